// What must hold after any kill of a writing command, and again after the next command: the store
// verifies, every boot entry (systemd-boot's files, or GRUB's generated menu and env) boots a
// complete deployment with its kernel and initramfs present, the default exists, the default from
// before the command is still bootable, and (after the next command) tmp/ is empty and nothing is
// left mounted or attached. Entries are read with a parser of its own (plain `key value` lines),
// so a writer's bug cannot hide behind the same bug in the reader; only systemd-boot's ordering
// (sortEntries, unit-tested against the spec) comes from the runtime.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { globMatch, sortEntries } from "../../../runtime/src/bls/order.ts";
import { parseEntryFileName } from "../../../runtime/src/bls/filename.ts";
import { PARTICLE } from "../../host/lib/particle.ts";

export interface World {
  /** The directory holding everything of one kill (sysroot, esp, TMPDIR of the commands). */
  dir: string;
  sysroot: string;
  esp?: string;
}

interface Entry {
  file: string;
  deployId?: string;
  linux?: string;
  initrd: string[];
  version?: string;
  sortKey?: string;
}

/** Reads loader/entries/*.conf (temp files start with a dot and are skipped, as systemd-boot does). */
export function readBlsEntries(esp: string): Entry[] {
  const dir = join(esp, "loader/entries");
  if (!existsSync(dir)) return [];
  const out: Entry[] = [];
  for (const file of readdirSync(dir)) {
    if (file.startsWith(".") || !file.endsWith(".conf")) continue;
    const e: Entry = { file, initrd: [] };
    for (const line of readFileSync(join(dir, file), "utf8").split("\n")) {
      const m = /^\s*(\S+)\s+(.*?)\s*$/.exec(line);
      if (!m || m[1]!.startsWith("#")) continue;
      const [, key, value] = m;
      if (key === "linux") e.linux = value;
      else if (key === "initrd") e.initrd.push(value!);
      else if (key === "version") e.version = value;
      else if (key === "sort-key") e.sortKey = value;
      else if (key === "options") e.deployId = /(?:^|\s)particle\.deploy=(\S+)/.exec(value!)?.[1];
    }
    out.push(e);
  }
  return out;
}

/** The entry systemd-boot boots by default: loader.conf's glob, first match in its order. */
function systemdBootDefault(esp: string, entries: Entry[]): Entry | undefined {
  const conf = existsSync(join(esp, "loader/loader.conf")) ? readFileSync(join(esp, "loader/loader.conf"), "utf8") : "";
  const glob = /^default\s+(\S+)/m.exec(conf)?.[1] ?? "*";
  const sorted = sortEntries(entries.map((e) => ({ ...e, name: parseEntryFileName(e.file)! })).filter((e) => e.name));
  return sorted.find((e) => globMatch(glob, e.name.id));
}

interface GrubMenuEntry {
  id: string;
  deployId?: string;
  linux?: string;
  initrd: string[];
}

export function readGrubMenu(esp: string): { entries: GrubMenuEntry[]; env: Map<string, string> } | undefined {
  const menu = join(esp, "grub/particle.cfg");
  if (!existsSync(menu)) return undefined;
  const entries: GrubMenuEntry[] = [];
  let cur: GrubMenuEntry | undefined;
  const unq = (s: string) => s.replace(/^'(.*)'$/, "$1");
  for (const line of readFileSync(menu, "utf8").split("\n")) {
    const m = /^menuentry .* --id (\S+) \{$/.exec(line);
    if (m) { cur = { id: unq(m[1]!), initrd: [] }; entries.push(cur); continue; }
    if (!cur) continue;
    const words = line.trim().split(/\s+/).map(unq);
    if (words[0] === "linux") {
      cur.linux = words[1];
      cur.deployId = words.find((w) => w.startsWith("particle.deploy="))?.slice("particle.deploy=".length);
    } else if (words[0] === "initrd") cur.initrd.push(...words.slice(1));
    else if (words[0] === "}") cur = undefined;
  }
  const envFile = join(esp, "grub/particle.env");
  const env = new Map<string, string>();
  if (existsSync(envFile)) {
    const raw = readFileSync(envFile);
    if (raw.length !== 1024) throw new Error(`grub/particle.env is ${raw.length} bytes, not 1024`);
    const text = raw.toString("utf8");
    if (!text.startsWith("# GRUB Environment Block\n")) throw new Error("grub/particle.env lost its signature");
    for (const l of text.split("\n").slice(1)) {
      const eq = l.indexOf("=");
      if (eq > 0 && !l.startsWith("#")) env.set(l.slice(0, eq), l.slice(eq + 1));
    }
  }
  return { entries, env };
}

/** Why deployment `id` could not boot, or undefined when its directory, manifest and image are there. */
export function deploymentProblem(sysroot: string, id: string): string | undefined {
  const d = join(sysroot, "particle/deploy", id);
  if (!existsSync(join(d, "deployment.json"))) return `deployment ${id}: ${d}/deployment.json missing`;
  let m: { imageDigest?: string; format?: string };
  try { m = JSON.parse(readFileSync(join(d, "deployment.json"), "utf8")); } catch (e) { return `deployment ${id}: deployment.json unreadable: ${(e as Error).message}`; }
  const img = join(sysroot, "particle/images", `${m.imageDigest}.${m.format === "squashfs" ? "squashfs" : "erofs"}`);
  if (!existsSync(img)) return `deployment ${id}: image ${img} missing`;
  if (m.format === "composefs" && !existsSync(join(d, "objects.bin"))) return `deployment ${id}: objects.bin (its object list) missing`;
  // particle-boot mounts /etc from here: a crash in the middle of the carry-over swap must not lose it.
  if (!existsSync(join(d, "etc/upper"))) return `deployment ${id}: etc/upper missing`;
  return undefined;
}

function bootFilesProblem(esp: string, what: string, linux: string | undefined, initrd: string[]): string | undefined {
  if (!linux) return `${what}: no linux line`;
  for (const p of [linux, ...initrd]) if (!existsSync(join(esp, p))) return `${what}: ${p} missing on the ESP`;
  if (initrd.length === 0) return `${what}: no initrd`;
  return undefined;
}

/** The deployment the machine boots next by default (undefined when nothing is installed). */
export function defaultDeployment(w: World): string | undefined {
  if (!w.esp) return undefined;
  const grub = readGrubMenu(w.esp);
  if (grub) return grub.entries[0]?.deployId;
  return systemdBootDefault(w.esp, readBlsEntries(w.esp))?.deployId;
}

/**
 * GRUB after a stage: a new default is never booted uncounted. If the menu's first entry is not
 * the default from before, the counters must be running for it.
 */
export function grubNewDefaultCounted(w: World, previousDefault: string | undefined): string[] {
  const grub = w.esp ? readGrubMenu(w.esp) : undefined;
  const first = grub?.entries[0]?.deployId;
  if (!grub || !first || first === previousDefault) return [];
  const counted = grub.env.get("particle_counted");
  return counted === first && grub.env.has("boot_counter") ? [] : [`new GRUB default ${first} is not counted (particle_counted=${counted ?? "-"}, boot_counter=${grub.env.get("boot_counter") ?? "-"})`];
}

/** Every problem found (empty: all invariants hold). `previousDefault` is the default before the command. */
export function checkInvariants(w: World, o: { previousDefault?: string; afterNext: boolean }): string[] {
  const problems: string[] = [];
  const v = spawnSync(PARTICLE, ["verify", "--sysroot", w.sysroot], { encoding: "utf8" });
  if (v.status !== 0) problems.push(`particle verify exited ${v.status}: ${v.stdout}${v.stderr}`.trim());
  if (w.esp) {
    const entries = readBlsEntries(w.esp);
    const bootable = new Set<string>();
    for (const e of entries) {
      if (!e.deployId) { problems.push(`entry ${e.file}: no particle.deploy=`); continue; }
      const p = deploymentProblem(w.sysroot, e.deployId) ?? bootFilesProblem(w.esp, `entry ${e.file}`, e.linux, e.initrd);
      if (p) problems.push(`entry ${e.file}: ${p}`);
      else bootable.add(e.deployId);
    }
    let grub: ReturnType<typeof readGrubMenu>;
    try { grub = readGrubMenu(w.esp); } catch (e) { problems.push((e as Error).message); }
    if (grub) {
      for (const e of grub.entries) {
        const p = (e.deployId ? deploymentProblem(w.sysroot, e.deployId) : `no particle.deploy=`) ?? bootFilesProblem(w.esp, `GRUB entry ${e.id}`, e.linux, e.initrd);
        if (p) problems.push(`GRUB menu entry ${e.id}: ${p}`);
      }
      for (const k of ["next_entry", "saved_entry"]) {
        const id = grub.env.get(k);
        if (id && !grub.entries.some((e) => e.id === id)) problems.push(`grubenv ${k}=${id} names no menu entry`);
      }
      // particle_counted may name a deployment the menu does not list yet: stage writes the
      // counters before the menu (grub.ts), and the menu counts only when it names its first entry.
    }
    const def = defaultDeployment(w);
    if (o.previousDefault !== undefined) {
      if (def === undefined) problems.push("no default entry any more");
      else if (grub ? !grub.entries.some((e) => e.deployId === def) : !bootable.has(def)) problems.push(`default deployment ${def} is not bootable`);
      const prevOk = grub ? grub.entries.some((e) => e.deployId === o.previousDefault) : bootable.has(o.previousDefault);
      if (!prevOk) problems.push(`the previous default, deployment ${o.previousDefault}, is no longer bootable`);
    }
  }
  if (o.afterNext) {
    const tmp = join(w.sysroot, "particle/tmp");
    const left = existsSync(tmp) ? readdirSync(tmp) : [];
    if (left.length) problems.push(`tmp/ not emptied: ${left.join(", ")}`);
    const m = mountsBelow(w.dir);
    if (m.length) problems.push(`mounts left: ${m.join(", ")}`);
    const loops = loopsBelow(w.dir);
    if (loops.length) problems.push(`loop devices left: ${loops.join(", ")}`);
  }
  return problems;
}

export function mountsBelow(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

export function loopsBelow(dir: string): string[] {
  const out = execFileSync("losetup", ["--list", "--noheadings", "--output", "NAME,BACK-FILE"], { encoding: "utf8" });
  return out.split("\n").map((l) => l.trim().split(/\s+/)).filter((x) => x[1]?.startsWith(`${dir}/`)).map((x) => `${x[0]} (${x[1]})`);
}

/** Undoes what a kill left, so the kill's directory can be removed: mounts (deepest first), loops. */
export function release(dir: string): void {
  for (const m of mountsBelow(dir).sort().reverse()) spawnSync("umount", ["-l", m]);
  for (const l of loopsBelow(dir)) spawnSync("losetup", ["-d", l.split(" ")[0]!]);
}
