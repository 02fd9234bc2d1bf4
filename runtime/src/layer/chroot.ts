// The system side of layering: a writable root made of a deployment and an overlay upper, all under
// the store's tmp/ (a crash leaves only tmp/, which the next command clears), and the chroot
// mounts apt and dpkg need. Everything mounted here is unmounted in `finally`, also on failure.
//
//   <work>/lower   the deployment, mounted read-only by particle's own mount code
//   <work>/upper   what apt changes (overlay upper), <work>/ovl-work its workdir
//   <work>/root    the overlay: lower + upper, the chroot and, later, the staging source
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { execa } from "execa";
import type { Manifest } from "../manifest.ts";
import { mountDeployment, unmountTree } from "../mounts/index.ts";
import { run } from "../system/exec.ts";
import { MountStack, mountChrootBase } from "../system/chroot-mounts.ts";
import { mount } from "../system/libc.ts";
import { aptErrors, CHROOT_ENV } from "./plan.ts";

export interface LayerRoot {
  root: string;
  upper: string;
  /** The lower deployment, mounted read-only. */
  lower: string;
}

/** Mounts `manifest`'s deployment with a writable overlay at <work>/root for the duration of `fn`. */
export async function withLayerRoot<T>(sysroot: string, manifest: Manifest, work: string, fn: (r: LayerRoot) => Promise<T>, log: (m: string) => void): Promise<T> {
  const d = (n: string) => join(work, n);
  for (const n of ["lower", "upper", "ovl-work", "root", "helper"]) mkdirSync(d(n), { recursive: true });
  try {
    const r = mountDeployment({ sysroot, manifest, target: d("lower"), verity: undefined, helperDir: d("helper") });
    for (const w of r.warnings) log(`warning: ${w}`);
    // The overlay's root directory takes its owner, mode and times from the upper directory: give
    // it the deployment's, so an unchanged tree stages to the same image (same digest).
    const st = lstatSync(d("lower"));
    chownSync(d("upper"), st.uid, st.gid);
    chmodSync(d("upper"), st.mode & 0o7777);
    await run("touch", ["--no-dereference", "--reference", d("lower"), d("upper")]);
    mount("overlay", d("root"), "overlay", 0, `lowerdir=${d("lower")},upperdir=${d("upper")},workdir=${d("ovl-work")}`);
    return await fn({ root: d("root"), upper: d("upper"), lower: d("lower") });
  } finally {
    unmountTree(work, { lazy: true });
  }
}

/** The policy-rc.d of the chroot: invoke-rc.d starts and restarts nothing (101: action forbidden). */
export const POLICY_RC_D = "#!/bin/sh\n# particle layer: no service starts in the chroot\nexit 101\n";

/**
 * Runs `fn` with the chroot mounts in place: /proc, /sys and /dev (the host's, slaved so nothing
 * propagates back), tmpfs on /tmp, /var/tmp, /run and /var/cache/apt (downloads and caches stay out
 * of the image), apt's lists from `listsDir` (kept in the store's cache between layer runs),
 * resolv.conf from the host, policy-rc.d, and `aptConfig` (a copy of the host directory `from` at
 * `to`, under the chroot's /run). Files made for the chroot are removed afterwards, so none of it
 * reaches the staged tree.
 */
export async function withChrootMounts<T>(root: string, listsDir: string, scratch: string, aptConfig: { from: string; to: string } | undefined, fn: () => Promise<T>, log: (m: string) => void): Promise<T> {
  const mounts = new MountStack();
  const created: string[] = [];
  const at = (p: string) => join(root, p);
  try {
    mountChrootBase(mounts, root, { tmp: "mode=1777", "var/tmp": "mode=1777", run: "mode=0755", "var/cache/apt": "mode=0755" });
    mkdirSync(at("var/cache/apt/archives/partial"), { recursive: true });
    mkdirSync(join(listsDir, "partial"), { recursive: true });
    mkdirSync(at("var/lib/apt/lists"), { recursive: true });
    mounts.bind(listsDir, at("var/lib/apt/lists"), false);
    const resolv = existsSync("/etc/resolv.conf") ? readFileSync("/etc/resolv.conf") : Buffer.from("");
    placeFile(root, "etc/resolv.conf", resolv, 0o644, scratch, mounts, created, log);
    placeFile(root, "usr/sbin/policy-rc.d", Buffer.from(POLICY_RC_D), 0o755, scratch, mounts, created, log);
    if (aptConfig) {
      // /run is the chroot's tmpfs: the copy never reaches the tree. Symlinks are followed so keys
      // linked from the host's /usr/share/keyrings come along.
      mkdirSync(dirname(at(aptConfig.to)), { recursive: true });
      await run("cp", ["-rL", "--", aptConfig.from, at(aptConfig.to)]);
    }
    return await fn();
  } finally {
    mounts.release(log);
    for (const f of created) rmSync(f, { force: true });
  }
}

/**
 * Gives the chroot `content` at `rel` without changing the tree: a bind mount over an existing
 * file, a file written into a tmpfs (a symlink into /run), or a new file removed afterwards (the
 * lower layer has none, so removing it leaves no whiteout).
 */
function placeFile(root: string, rel: string, content: Buffer, mode: number, scratch: string, mounts: MountStack, created: string[], log: (m: string) => void, depth = 0): void {
  const p = join(root, rel);
  let st;
  try { st = lstatSync(p); } catch { st = undefined; }
  if (st?.isSymbolicLink()) {
    if (depth > 8) { log(`warning: /${rel}: too many symlinks; left as it is`); return; }
    const target = readlinkSync(p);
    const next = target.startsWith("/") ? target.slice(1) : relative(root, join(dirname(p), target));
    if (next.startsWith("..")) { log(`warning: /${rel} points outside the tree; left as it is`); return; }
    if (next.startsWith("run/") || next.startsWith("tmp/")) {
      mkdirSync(dirname(join(root, next)), { recursive: true });
      writeFileSync(join(root, next), content, { mode });
      return;
    }
    placeFile(root, next, content, mode, scratch, mounts, created, log, depth + 1);
    return;
  }
  if (st?.isFile()) {
    const src = join(scratch, rel.replaceAll("/", "_"));
    writeFileSync(src, content, { mode });
    mounts.bind(src, p, false);
    return;
  }
  if (st) { log(`warning: /${rel} is not a file; left as it is`); return; }
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content, { mode });
  created.push(p);
}

/** A command in the chroot, with its output; apt's failure becomes an error that says what apt said. */
export async function chrootRun(root: string, argv: readonly string[], what: string): Promise<{ stdout: string; stderr: string }> {
  const r = await execa("chroot", [root, ...argv], { env: CHROOT_ENV, extendEnv: false, reject: false, stdin: "ignore" });
  const stdout = String(r.stdout ?? "");
  const stderr = String(r.stderr ?? "");
  if (r.exitCode !== 0 || r.failed) {
    const why = r.exitCode === undefined ? (r.shortMessage ?? "could not run") : `exit ${r.exitCode}`;
    throw new Error(`${what} failed (${argv.join(" ")}: ${why}):\n${aptErrors(stderr, stdout)}`);
  }
  return { stdout, stderr };
}

/** Kernel versions whose module directories the overlay upper holds (changed by the layer). */
export function modulesChanged(upper: string): string[] {
  const dir = join(upper, "usr/lib/modules");
  if (!existsSync(dir) || !lstatSync(dir).isDirectory()) return [];
  return readdirSync(dir).sort();
}
