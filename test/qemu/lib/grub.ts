// The GRUB cycle's inputs: the trixie tree (A) installed with `particle install --bootloader grub`
// (cached per tree, initramfs and particle build), and staging further deployments into a copy of
// that disk from the host, with the same `particle stage` a booted system runs, pointed at the disk's
// root partition (loop device) and at a copy of its ESP (mtools: the host has no vfat), whose new
// and changed files are written back. Staging a whole tree under TCG takes minutes (the issue-4
// cycle does that in the guest); here the guest only boots what the host staged.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { cached, fileHash, hashOf } from "./cache.ts";
import { sh, type GuestTree } from "./guest.ts";
import { KERNEL_ARGS } from "./qemu.ts";
import { PARTICLE } from "./cycle.ts";
import { parseGrubEnv, type GrubEnv } from "../../../runtime/src/bootloader/grub-env.ts";

const DISK_SIZE = "4G";
/** Bump when the install step changes. */
const GRUB_DISK_VERSION = "1";
const MTOOLS = { MTOOLS_SKIP_CHECK: "1" };
/** The ESP is partition 1, at 1 MiB (install's sfdisk script). */
const espImage = (disk: string) => `${disk}@@1M`;

/** `particle install --bootloader grub` of the guest tree, with the harness's initramfs and kernel arguments. */
export async function installedGrubDisk(g: GuestTree, initrd: string, log: (m: string) => void): Promise<string> {
  const key = hashOf(GRUB_DISK_VERSION, g.key, initrd, await fileHash(PARTICLE), DISK_SIZE);
  return cached(`disk-grub-a-${key}.img`, async (tmp) => {
    const args = ["install", "--to-disk", tmp, "--bootloader", "grub", "--source", `dir:${g.dir}`, "--size", DISK_SIZE, "--initramfs", initrd, "--version", "A"];
    for (const a of KERNEL_ARGS.split(" ")) args.push("--karg", a);
    const t = Date.now();
    const r = spawnSync(PARTICLE, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`particle install failed (${r.status}):\n${r.stdout}${r.stderr}`);
    log(`${r.stderr.trim()}\ninstalled (GRUB) in ${((Date.now() - t) / 1000).toFixed(0)} s`);
  });
}

export function espRead(disk: string, path: string): Buffer {
  const r = spawnSync("mtype", ["-i", espImage(disk), `::/${path}`], { env: { ...process.env, ...MTOOLS }, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`mtype ${path}: ${r.stderr}`);
  return r.stdout;
}

export const espEnv = (disk: string): GrubEnv => parseGrubEnv(espRead(disk, "grub/particle.env"));
export const espMenu = (disk: string): string => espRead(disk, "grub/particle.cfg").toString("utf8");

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), createHash("sha256").update(readFileSync(p)).digest("hex"));
    }
  };
  walk(dir);
  return out;
}

/**
 * Runs `particle` against the disk's root partition and ESP as a booted deployment `bootedId`
 * would (--sysroot, --esp, --cmdline), then `after` (in-process steps on the same mounts), then
 * writes the ESP's new and changed files back. Each command is one `particle` command line;
 * returns their stdouts. Once a guest has booted, the store's objects carry fs-verity, which this
 * host's kernel cannot open: staging still works (it only adds objects), mounting a deployment
 * does not.
 */
export function onDisk(disk: string, bootedId: string, commands: string[][], log: (m: string) => void = () => {},
  after?: (root: string, esp: string, outs: string[]) => void, opts: { storeOnly?: boolean } = {}): string[] {
  const work = mkdtempSync(join(tmpdir(), "particle-grub-disk-"));
  const esp = join(work, "esp");
  const mnt = join(work, "root");
  mkdirSync(esp);
  mkdirSync(mnt);
  const env = { ...process.env, ...MTOOLS };
  const outs: string[] = [];
  sh("mcopy", ["-i", espImage(disk), "-s", "-p", "-n", "::/*", esp], { env: MTOOLS });
  const before = files(esp);
  const loop = sh("losetup", ["--find", "--show", "--partscan", disk]).trim();
  try {
    sh("partx", ["--update", loop]);
    for (let i = 0; i < 100 && !existsSync(`${loop}p2`); i++) spawnSync("sleep", ["0.05"]);
    sh("mount", [`${loop}p2`, mnt]);
    try {
      for (const c of commands) {
        // storeOnly: as on a machine that is not booted from particle (stage then writes no entry).
        const args = [...c, "--sysroot", mnt, ...(opts.storeOnly ? [] : ["--esp", esp, "--cmdline", `particle.deploy=${bootedId}`])];
        const t = Date.now();
        const r = spawnSync(PARTICLE, args, { encoding: "utf8", env, maxBuffer: 1 << 26 });
        if (r.status !== 0) throw new Error(`particle ${args.join(" ")} failed (${r.status}):\n${r.stderr}`);
        log(`host: particle ${c.join(" ")} (${((Date.now() - t) / 1000).toFixed(0)} s)\n${r.stderr.trim()}`);
        outs.push(r.stdout);
      }
      after?.(mnt, esp, outs);
    } finally {
      sh("umount", [mnt]);
    }
  } finally {
    sh("losetup", ["-d", loop]);
  }
  // Kernels and initramfs images first, the menu and its counters last (as on a mounted ESP).
  const changed = [...files(esp)].filter(([p, h]) => before.get(p) !== h).map(([p]) => p)
    .sort((a, b) => Number(a.startsWith("grub/")) - Number(b.startsWith("grub/")) || a.localeCompare(b));
  for (const p of changed) {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) spawnSync("mmd", ["-i", espImage(disk), `::/${parts.slice(0, i).join("/")}`], { env });
    sh("mcopy", ["-i", espImage(disk), "-o", "-p", join(esp, p), `::/${p}`], { env: MTOOLS });
  }
  log(`host: wrote ${changed.length} ESP files back: ${changed.filter((p) => !p.startsWith("particle/")).join(", ")}`);
  rmSync(work, { recursive: true, force: true });
  return outs;
}

/** Tree B: the guest tree plus one file, as a directory (reflink copy where the filesystem can). */
export function treeB(g: GuestTree, dest: string, marker: string, text: string): string {
  sh("cp", ["-a", "--reflink=auto", g.dir, dest]);
  mkdirSync(join(dest, marker, ".."), { recursive: true });
  writeFileSync(join(dest, marker), text);
  return dest;
}
