// Resolving --sysroot/--esp/--cmdline for the commands that read the deployment state.
import { readFileSync } from "node:fs";
import { findEsp, bootedIdFromCmdline, bootedIdFromMarker, BOOTED_MARKER_PATH } from "./booted.ts";
import type { Where } from "./read.ts";

export function resolveWhere(opts: Record<string, any>): Where {
  const sysroot = String(opts.sysroot ?? "/sysroot");
  const esp = opts.esp !== undefined ? String(opts.esp) : findEsp();
  let cmdline = opts.cmdline !== undefined ? String(opts.cmdline) : "";
  if (opts.cmdline === undefined) {
    try { cmdline = readFileSync("/proc/cmdline", "utf8"); } catch { /* not Linux: nothing booted */ }
  }
  let bootedId = bootedIdFromCmdline(cmdline);
  // A sealed UKI's command line names the image, not the deployment (particle-boot finds it by
  // digest): the running system learns the id from what particle-boot recorded.
  if (bootedId === undefined && opts.cmdline === undefined) {
    try { bootedId = bootedIdFromMarker(readFileSync(BOOTED_MARKER_PATH, "utf8")); } catch { /* not booted by particle-boot */ }
  }
  return { sysroot, esp, bootedId };
}

export function requireEsp(w: Where): string {
  if (!w.esp) throw new Error("no ESP found (looked for loader/ under /efi, /boot/efi, /boot); pass --esp DIR");
  return w.esp;
}

/**
 * For `particle stage`: where to write the new deployment's boot entry, if anywhere. Only with
 * --esp, or on a system booted from particle (then its ESP and booted deployment); never the ESP of
 * a host that merely has one, which staging into a test sysroot must not touch.
 */
export function stageBootTarget(opts: Record<string, any>): { sysroot: string; esp: string; bootedId?: string } | undefined {
  const w = resolveWhere(opts);
  if (opts.esp === undefined && !w.bootedId) return undefined;
  return { sysroot: w.sysroot, esp: requireEsp(w), bootedId: w.bootedId };
}
