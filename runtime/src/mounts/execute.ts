// Performs a mount plan with syscalls (no spawned mount(8): in the initramfs under QEMU TCG each
// spawn costs 0.1–0.8 s). On failure, everything this run mounted is unmounted again, newest
// first, and the error names the step that failed.
import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { mount, umount, MS_BIND, MS_MOVE, MS_PRIVATE, MS_RDONLY, MS_REC, MNT_DETACH, SysError } from "../system/libc.ts";
import { attachLoop } from "./loop.ts";
import type { Step } from "./plan.ts";
import { checkpoint } from "../system/die-at.ts";

const EINVAL = 22;
const ENOTBLK = 15;
const ENOTTY = 25;

/** Errnos with which a kernel refuses a regular file as the source of a block filesystem. */
const FILE_SOURCE_REFUSED = new Set([ENOTBLK, EINVAL, ENOTTY]);

export interface ExecuteResult {
  /** Loop devices set up (they free themselves on unmount). */
  loops: string[];
  /** For each overlay step, the option string the kernel accepted. */
  overlayOptions: string[];
}

export function describeStep(s: Step): string {
  switch (s.op) {
    case "mkdir": return `creating directory ${s.path}`;
    case "rmdir": return `removing helper directory ${s.path}`;
    case "image": return `mounting ${s.fsType} image ${s.image} on ${s.target}`;
    case "overlay": return `mounting overlay on ${s.target}`;
    case "tmpfs": return `mounting tmpfs on ${s.target}`;
    case "device": return `mounting ${s.device} on ${s.target}`;
    case "bind": return `bind-mounting ${s.source} on ${s.target}`;
    case "detach": return `detaching helper mount ${s.target}`;
    case "private": return `making mount ${s.target} private`;
    case "move": return `moving mount ${s.source} to ${s.target}`;
  }
}

function needMountPoint(path: string): void {
  // A read-only image cannot grow a missing directory; say which one the tree lacks.
  if (!existsSync(path)) throw new Error(`mount point ${path} does not exist (the deployment's tree must contain this directory)`);
}

function mountImage(s: Extract<Step, { op: "image" }>, res: ExecuteResult): void {
  needMountPoint(s.target);
  if (s.loop === "fallback") {
    try {
      mount(s.image, s.target, s.fsType, MS_RDONLY, null);
      return;
    } catch (e) {
      if (!(e instanceof SysError) || !FILE_SOURCE_REFUSED.has(e.errno)) throw e;
    }
  }
  const loop = attachLoop(s.image);
  try {
    mount(loop.device, s.target, s.fsType, MS_RDONLY, null);
    res.loops.push(loop.device);
  } finally {
    loop.release();
  }
}

function mountOverlay(s: Extract<Step, { op: "overlay" }>, res: ExecuteResult): void {
  needMountPoint(s.target);
  const errors: string[] = [];
  for (const opts of s.options) {
    try {
      mount("overlay", s.target, "overlay", s.readOnly ? MS_RDONLY : 0, opts);
      res.overlayOptions.push(opts);
      return;
    } catch (e) {
      if (!(e instanceof SysError) || e.errno !== EINVAL) throw e;
      errors.push((e as Error).message);
    }
  }
  throw new Error(`overlayfs refused every option syntax (the kernel log, dmesg, says why):\n  ${errors.join("\n  ")}`);
}

function mountDevice(s: Extract<Step, { op: "device" }>): void {
  needMountPoint(s.target);
  const errors: string[] = [];
  for (const t of s.fsTypes) {
    try {
      mount(s.device, s.target, t, 0, null);
      return;
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      errors.push((e as Error).message);
    }
  }
  throw new Error(`no filesystem type (${s.fsTypes.join(", ")}) mounts ${s.device}:\n  ${errors.join("\n  ")}`);
}

function runStep(s: Step, res: ExecuteResult): void {
  switch (s.op) {
    case "mkdir": mkdirSync(s.path, { recursive: true, mode: 0o755 }); return;
    case "rmdir": rmdirSync(s.path); return;
    case "image": mountImage(s, res); return;
    case "overlay": mountOverlay(s, res); return;
    case "tmpfs": needMountPoint(s.target); mount("tmpfs", s.target, "tmpfs", 0, s.options); return;
    case "device": mountDevice(s); return;
    case "bind": needMountPoint(s.target); mount(s.source, s.target, null, MS_BIND | (s.recursive ? MS_REC : 0), null); return;
    case "detach": umount(s.target, MNT_DETACH); return;
    case "private": mount(null, s.target, null, MS_PRIVATE, null); return;
    case "move": needMountPoint(s.target); mount(s.source, s.target, null, MS_MOVE, null); return;
  }
}

const MOUNTS = new Set<Step["op"]>(["image", "overlay", "tmpfs", "device", "bind"]);

/** Runs the steps in order; on failure unmounts what it mounted (newest first) and rethrows. */
export function executePlan(steps: Step[]): ExecuteResult {
  const res: ExecuteResult = { loops: [], overlayOptions: [] };
  const mounted: string[] = [];
  for (const s of steps) {
    try {
      runStep(s, res);
    } catch (e) {
      for (const t of mounted.reverse()) {
        try { umount(t, MNT_DETACH); } catch { /* already gone: detached or moved with its parent */ }
      }
      throw new Error(`${describeStep(s)}: ${(e as Error).message}`);
    }
    if (MOUNTS.has(s.op)) mounted.push((s as { target: string }).target);
    checkpoint(`mount:${s.op}`);
    if (s.op === "detach") {
      const i = mounted.lastIndexOf(s.target);
      if (i >= 0) mounted.splice(i, 1);
    }
  }
  return res;
}
