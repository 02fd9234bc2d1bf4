// The update cycle on an installed disk, shared by test/qemu/cycle.test.ts and `make demo`:
// install the trixie tree (A) to a disk image, boot it through OVMF + systemd-boot, stage B inside
// the guest from a second disk, reboot into B, roll back, reboot into A, clean up.
// Expensive inputs are cached under ~/.cache/particle-os, keyed by what they are built from.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cached, fileHash, hashOf } from "./cache.ts";
import { makeExt4 } from "./disk.ts";
import { guestTree, initramfs, REPO, sh, type GuestTree } from "./guest.ts";
import { KERNEL_ARGS, type BootResult } from "./qemu.ts";

export const PARTICLE = join(REPO, "dist/particle");
/** The one file B adds: its object is B's alone (nothing in A has these bytes). */
export const B_MARKER = "usr/share/particle-test/update-b";
export const B_MARKER_TEXT = "Particle-OS update B: this file exists only in deployment B\n";
const DISK_SIZE = "4G";
/** Bump when the install step or the update tree's recipe changes. */
const CYCLE_VERSION = "1";

export interface CycleInputs {
  g: GuestTree;
  initrd: string;
  /** Pristine installed disk (cached; copy before booting it). */
  installed: string;
  /** ext4 image holding tree B, attached as /dev/vdc. */
  treeB: string;
  installLog: string;
}

/**
 * `particle install` of the guest tree onto a sparse disk image. The harness's initramfs (same
 * tree, same dracut module) is passed with --initramfs: dracut in a chroot is 1-2 minutes that the
 * issue-3 tests already spend and cache. The harness's kernel arguments go into the entry (serial
 * console, no watchdog noise under TCG), and `particle stage` carries them to later entries.
 */
async function installedDisk(g: GuestTree, initrd: string, log: (m: string) => void): Promise<{ path: string; log: string }> {
  const key = hashOf(CYCLE_VERSION, g.key, initrd, await fileHash(PARTICLE), DISK_SIZE);
  let out = "(cached)";
  const path = await cached(`disk-a-${key}.img`, async (tmp) => {
    const args = ["install", "--to-disk", tmp, "--source", `dir:${g.dir}`, "--size", DISK_SIZE, "--initramfs", initrd];
    for (const a of KERNEL_ARGS.split(" ")) args.push("--karg", a);
    log(`particle ${args.join(" ")}`);
    const t = Date.now();
    const r = spawnSync(PARTICLE, args, { encoding: "utf8" });
    out = `${r.stdout}${r.stderr}`;
    if (r.status !== 0) throw new Error(`particle install failed (${r.status}):\n${out}`);
    log(`${out.trim()}\ninstalled in ${((Date.now() - t) / 1000).toFixed(0)} s`);
  });
  return { path, log: out };
}

/** Tree B: tree A plus one new file, as an ext4 image the guest mounts read-only and stages from. */
async function treeBImage(g: GuestTree): Promise<string> {
  return cached(`tree-b-${hashOf(CYCLE_VERSION, g.key, B_MARKER_TEXT)}.img`, async (out) => {
    const dir = `${out}.d`;
    try {
      sh("cp", ["-a", "--reflink=auto", g.dir, dir]);
      mkdirSync(join(dir, B_MARKER, ".."), { recursive: true });
      writeFileSync(join(dir, B_MARKER), B_MARKER_TEXT);
      makeExt4(out, dir, 64);
    } finally {
      sh("rm", ["-rf", dir]);
    }
  });
}

export async function prepareCycle(log: (m: string) => void = () => {}): Promise<CycleInputs> {
  const g = await guestTree();
  const initrd = await initramfs(g);
  const installed = await installedDisk(g, initrd, log);
  const treeB = await treeBImage(g);
  return { g, initrd, installed: installed.path, treeB, installLog: installed.log };
}

/** A working copy of the installed disk (sparse) with fresh EFI variables. */
export function copyDisk(c: CycleInputs, dest: string): string {
  sh("cp", ["--sparse=always", c.installed, dest]);
  sh("rm", ["-f", `${dest}.vars.fd`]);
  return dest;
}

// Each script prints `particle status` for people and `JSON:<name>:<one line>` / `KV:<key>:<value>`
// for the host to check.
const PRELUDE = `set -euo pipefail
j() { echo "JSON:$1:$(tr -d '\\n')"; }
kv() { echo "KV:$1:$2"; }
now() { cut -d' ' -f1 /proc/uptime; }
kv cmdline "$(cat /proc/cmdline)"
kv booted "$(cat /run/particle-booted 2>/dev/null | tr '\\n' ' ')"
`;

/** Boot 1, on A: stage B from /dev/vdc (which makes it the next boot's default). */
export const STAGE_B = `${PRELUDE}
particle status
particle status --json | j before
mkdir -p /run/tree-b && mount -o ro /dev/vdc /run/tree-b
t0=$(now)
particle stage dir:/run/tree-b
kv stage-seconds "$(awk "BEGIN{print $(now) - $t0}")"
umount /run/tree-b
particle status
particle status --json | j after
`;

/** Boot 2, on B: check the new file, find its object, roll back. */
export const ON_B = `${PRELUDE}
kv marker "$(cat /${B_MARKER})"
d=$(fsverity digest /${B_MARKER} | cut -d' ' -f1 | sed 's/^sha256://')
kv object "$d"
[ -e "/sysroot/particle/objects/\${d:0:2}/\${d:2}" ] && kv object-exists yes || kv object-exists no
particle status
particle status --json | j status
particle rollback
particle status --json | j after
`;

/** Boot 3, on A again: cleanup, and whether B's object is still in the store. */
export function backOnA(object: string): string {
  return `${PRELUDE}
particle status
particle status --json | j status
particle cleanup
particle status --json | j after
[ -e "/sysroot/particle/objects/${object.slice(0, 2)}/${object.slice(2)}" ] && kv object-exists yes || kv object-exists no
particle status
`;
}

export interface Parsed {
  json: Record<string, any>;
  kv: Record<string, string>;
}

export function parse(r: BootResult): Parsed {
  const json: Record<string, any> = {};
  const kv: Record<string, string> = {};
  for (const line of r.output.split("\n")) {
    let m = /^JSON:([^:]+):(.*)$/.exec(line);
    if (m) json[m[1]!] = JSON.parse(m[2]!);
    else if ((m = /^KV:([^:]+):(.*)$/.exec(line))) kv[m[1]!] = m[2]!;
  }
  return { json, kv };
}

/** The script's output for people: everything but the machine-readable lines. */
export function humanOutput(r: BootResult): string {
  return r.output.split("\n").filter((l) => !/^(JSON|KV):/.test(l)).join("\n");
}

export function timing(r: BootResult): string {
  const s = (ms: number | null) => (ms === null ? "?" : `${(ms / 1000).toFixed(0)} s`);
  return `login after ${s(r.readyMs)} (guest uptime ${r.readyUptime ?? "?"} s), whole run ${s(r.wallMs)}`;
}
