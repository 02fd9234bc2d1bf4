// `particle stage` on a sealed machine: the new deployment boots only through a signed UKI that
// pins its image, so the UKI is given with --uki (built by `particle seal` where the keys are) and
// checked against the digest the stage computed. A UKI that pins another image is refused and the
// new deployment is taken back out: nothing unbootable is left behind, the default is unchanged.
// The signature is not checked here (the machine has no keys): the firmware checks it at boot.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { readSection } from "../uki/pe.ts";
import { fsyncDir, writeFileAtomic } from "../system/atomic.ts";
import { deployDir, storeLayout } from "../store/layout.ts";
import { pinError, pinnedImage, SEALED_MARKER, UKI_DIR, ukiFileName } from "./plan.ts";
import { parseUkiName } from "./uki-order.ts";
import { promoteUki } from "../bootloader/promote-uki.ts";


export function isSealedEsp(esp: string): boolean {
  return existsSync(join(esp, SEALED_MARKER));
}

export interface UkiFile {
  path: string;
  bytes: Buffer;
  cmdline: string | undefined;
  version: string | undefined;
}

/** IMAGE_VERSION from a UKI's .osrel (the last assignment wins, as in os-release). */
export function imageVersion(osrel: string): string | undefined {
  let v: string | undefined;
  for (const line of osrel.split("\n")) {
    const m = /^IMAGE_VERSION=(.*)$/.exec(line.trim());
    if (m) v = m[1]!.replace(/^"(.*)"$/, "$1");
  }
  return v;
}

/** Reads and pre-checks a UKI before anything is staged: it must be a PE image pinning some image. */
export function readUki(path: string): UkiFile {
  if (!existsSync(path)) throw new Error(`--uki ${path}: no such file`);
  const bytes = readFileSync(path);
  const cmdline = readSection(bytes, ".cmdline", `--uki ${path}`)?.toString("utf8").replace(/\0+$/, "");
  const osrel = readSection(bytes, ".osrel", `--uki ${path}`)?.toString("utf8");
  if (cmdline === undefined || pinnedImage(cmdline) === undefined) throw new Error(pinError(cmdline, "", `--uki ${path}`));
  return { path, bytes, cmdline, version: osrel ? imageVersion(osrel) : undefined };
}

/** After staging: the UKI must pin `digest`; if not, deployment `id` is removed again and this throws. */
export function checkPin(uki: UkiFile, sysroot: string, id: string, digest: string): void {
  const err = pinError(uki.cmdline, digest, `--uki ${uki.path}`);
  if (!err) return;
  const l = storeLayout(sysroot);
  const aside = mkdtempSync(join(l.tmp, "refused-"));
  // One rename takes the deployment out; its objects stay for the next cleanup (others may share them).
  renameSync(deployDir(l, id), join(aside, id));
  fsyncDir(l.deploy);
  rmSync(aside, { recursive: true, force: true });
  throw new Error(`${err}; refused, deployment ${id} removed again (this machine is sealed and boots only UKIs that pin their image)`);
}

/**
 * Installs the UKI as a Type #2 entry with a boot counter and makes it the default (uki-order.ts:
 * UKIs with a higher IMAGE_VERSION get no tries left); returns its file name. An older copy of the
 * same entry (say, one a rollback gave `+0`) goes once the new one is in place.
 */
export function installUki(esp: string, uki: UkiFile, digest: string): string {
  const name = ukiFileName(uki.version ?? digest.slice(0, 12), digest);
  const dir = join(esp, UKI_DIR);
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, name), uki.bytes);
  const id = parseUkiName(name)!.name.id;
  for (const f of readdirSync(dir)) if (f !== name && parseUkiName(f)?.name.id === id) rmSync(join(dir, f));
  fsyncDir(dir);
  return promoteUki(esp, digest).file;
}
