// Host-test scaffolding: a private tmpfs "arena" that plays the initramfs. Inside it, sysroot/ is
// a bind mount of a staged store (so it is a mount point, as /sysroot is after sysroot.mount)
// and run/ stands in for /run. Being private, nothing mounted inside propagates to the host.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dirname, "../..");
export const BUN = join(REPO, "node_modules/.bin/bun");
export const BOOT_BIN = join(REPO, "dist/particle-boot");

/** Builds dist/particle-boot exactly as the Makefile does. */
export function buildBoot(): void {
  mkdirSync(join(REPO, "dist"), { recursive: true });
  execFileSync(BUN, [
    "build", "--compile", "--minify", "--bytecode", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
    join(REPO, "boot/src/main.ts"), "--outfile", BOOT_BIN,
  ], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
}

export interface Arena {
  dir: string;
  sysroot: string;
  run: string;
}

export function makeArena(physical: string, name = "arena"): Arena {
  const dir = mkdtempSync(join(tmpdir(), `particle-${name}-`));
  execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "particle-test-arena", dir]);
  execFileSync("mount", ["--make-private", dir]);
  const sysroot = join(dir, "sysroot");
  const run = join(dir, "run");
  mkdirSync(sysroot);
  mkdirSync(run);
  execFileSync("mount", ["--bind", physical, sysroot]);
  return { dir, sysroot, run };
}

/** Mount points at or under `dir`, from this process's mountinfo. */
export function mountPointsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" ")[4]!.replace(/\\040/g, " "))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

/**
 * Detaches the arena and everything in it. Lazy: a booted tree pins itself (the root's EROFS
 * image is open through <root>/sysroot), so a strict order cannot take it apart.
 */
export function dropArena(a: Arena): void {
  if (mountPointsUnder(a.dir).length) execFileSync("umount", ["--lazy", "--recursive", a.dir]);
  rmSync(a.dir, { recursive: true, force: true });
}

export interface BootRun {
  status: number;
  stdout: string;
  stderr: string;
}

export function runBoot(args: string[]): BootRun {
  const r = spawnSync(BOOT_BIN, ["--no-kmsg", ...args], { encoding: "utf8" });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export interface FindmntNode {
  target: string;
  fstype: string;
  source: string;
  options: string;
  children?: FindmntNode[];
}

/** `findmnt -J` of the tree at `dir` (undefined when nothing is mounted there). */
export function findmnt(dir: string): FindmntNode | undefined {
  const r = spawnSync("findmnt", ["-J", "-R", "-o", "TARGET,FSTYPE,SOURCE,OPTIONS", "--mountpoint", dir], { encoding: "utf8" });
  if (r.status !== 0) return undefined;
  const fs = (JSON.parse(r.stdout) as { filesystems: FindmntNode[] }).filesystems;
  // Stacked mounts: the last listed is the one on top.
  return fs.at(-1);
}

export function child(node: FindmntNode, target: string): FindmntNode | undefined {
  return node.children?.find((c) => c.target === target);
}
