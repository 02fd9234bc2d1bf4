// Carrying local /etc changes to a new deployment. A deployment's /etc is an overlay whose upper
// directory (particle/deploy/<id>/etc/upper) holds exactly the local changes, so the carry-over is
// a copy of the booted upper onto the new deployment: local edits win, untouched files get the new
// image's defaults. The one thing overlayfs cannot express is a local non-directory where the new
// image has a directory (it would hide the whole directory): such a file is saved aside and
// reported, never silently dropped and never allowed to hide the image's directory.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { run } from "../system/exec.ts";
import { fsyncDir, writeFileAtomic } from "../system/atomic.ts";
import { deployDir, storeLayout } from "../store/layout.ts";
import { EtcCarryOver, type EtcConflict } from "./status.ts";
import { checkpoint } from "../system/die-at.ts";
import { renameExchange } from "../system/libc.ts";

export type Kind = "file" | "dir" | "symlink" | "whiteout" | "other";

export const CARRYOVER_FILE = "etc-carryover.json";
export const CONFLICTS_DIR = "etc-conflicts";

export function kindOf(path: string): Kind | undefined {
  let st;
  try { st = lstatSync(path); } catch { return undefined; }
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  // overlayfs marks a deleted lower file with a 0:0 character device in the upper.
  if (st.isCharacterDevice() && st.rdev === 0) return "whiteout";
  return "other";
}

/** Pure: which upper entries conflict with the new image. `upper` lists (path, kind) parents first. */
export function planConflicts(upper: ReadonlyArray<{ path: string; kind: Kind }>, imageKind: (path: string) => Kind | undefined): Array<{ path: string; local: Kind; image: Kind }> {
  const out: Array<{ path: string; local: Kind; image: Kind }> = [];
  for (const u of upper) {
    if (u.kind === "dir" || u.kind === "whiteout") continue;
    if (out.some((c) => u.path.startsWith(`${c.path}/`))) continue;
    const img = imageKind(u.path);
    if (img === "dir") out.push({ path: u.path, local: u.kind, image: img });
  }
  return out;
}

export function walkUpper(root: string, prefix = ""): Array<{ path: string; kind: Kind }> {
  const out: Array<{ path: string; kind: Kind }> = [];
  if (!existsSync(root)) return out;
  for (const name of readdirSync(join(root, prefix)).sort()) {
    const path = prefix ? `${prefix}/${name}` : name;
    const kind = kindOf(join(root, path))!;
    out.push({ path, kind });
    if (kind === "dir") out.push(...walkUpper(root, path));
  }
  return out;
}

export function upperDir(sysroot: string, id: string): string {
  return join(deployDir(storeLayout(sysroot), id), "etc", "upper");
}

/** Finishes a swap a crash interrupted: `upper` is always present afterwards. */
export function recoverUpper(sysroot: string, id: string): void {
  const up = upperDir(sysroot, id);
  const fresh = `${up}.new`;
  const old = `${up}.old`;
  if (!existsSync(up)) {
    if (existsSync(fresh)) renameSync(fresh, up);
    else if (existsSync(old)) renameSync(old, up);
    else mkdirSync(up, { recursive: true });
  }
  rmSync(fresh, { recursive: true, force: true });
  rmSync(old, { recursive: true, force: true });
}

/**
 * Replaces deployment `to`'s upper with a copy of `from`'s, minus conflicts (moved under
 * deploy/<to>/etc-conflicts/), and records the result in deploy/<to>/etc-carryover.json.
 * `imageEtc` is the new image's /etc (a mounted deployment, or a tree).
 */
export async function carryOverEtc(sysroot: string, from: string, to: string, imageEtc: string, phase: "stage" | "finalize"): Promise<EtcCarryOver> {
  const src = upperDir(sysroot, from);
  const dst = upperDir(sysroot, to);
  const toDir = dirname(dirname(dst));
  recoverUpper(sysroot, to);
  const fresh = `${dst}.new`;
  // cp -a keeps owners, modes, xattrs (trusted.overlay.opaque marks) and whiteout devices.
  if (existsSync(src)) await run("cp", ["-a", "--no-target-directory", src, fresh]);
  else mkdirSync(fresh);
  const entries = walkUpper(fresh);
  const found = planConflicts(entries, (p) => kindOf(join(imageEtc, p)));
  const conflicts: EtcConflict[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  for (const c of found) {
    const saved = join(toDir, CONFLICTS_DIR, stamp, c.path);
    mkdirSync(dirname(saved), { recursive: true });
    renameSync(join(fresh, c.path), saved);
    conflicts.push({ ...c, savedAs: relative(sysroot, saved) });
  }
  await run("sync", ["-f", fresh]);
  checkpoint("etc-carry:copied");
  // Swap in one step: the new upper is complete and durable first, and at no moment is there no
  // upper (particle-boot mounts /etc from it; finalize runs at shutdown, where a power cut is
  // likely). Afterwards `fresh` holds the old upper; recoverUpper removes it if a crash comes first.
  if (existsSync(dst)) renameExchange(fresh, dst);
  else renameSync(fresh, dst);
  checkpoint("etc-carry:swapped");
  fsyncDir(dirname(dst));
  rmSync(fresh, { recursive: true, force: true });
  const report = EtcCarryOver.parse({ from, to, at: new Date().toISOString(), phase, carried: entries.length - found.length, conflicts });
  writeFileAtomic(join(toDir, CARRYOVER_FILE), JSON.stringify(report, null, 2) + "\n");
  return report;
}

export function readCarryOver(sysroot: string, id: string): EtcCarryOver | undefined {
  const p = join(deployDir(storeLayout(sysroot), id), CARRYOVER_FILE);
  if (!existsSync(p)) return undefined;
  const r = EtcCarryOver.safeParse(JSON.parse(readFileSync(p, "utf8")));
  if (!r.success) throw new Error(`${p}: invalid carry-over report`);
  return r.data;
}
