// Resolving --sysroot/--esp/--cmdline for the commands that read the deployment state.
import { readFileSync } from "node:fs";
import { findEsp, bootedIdFromCmdline } from "./booted.ts";
import type { Where } from "./read.ts";

export function resolveWhere(opts: Record<string, any>): Where {
  const sysroot = String(opts.sysroot ?? "/sysroot");
  const esp = opts.esp !== undefined ? String(opts.esp) : findEsp();
  let cmdline = opts.cmdline !== undefined ? String(opts.cmdline) : "";
  if (opts.cmdline === undefined) {
    try { cmdline = readFileSync("/proc/cmdline", "utf8"); } catch { /* not Linux: nothing booted */ }
  }
  return { sysroot, esp, bootedId: bootedIdFromCmdline(cmdline) };
}

export function requireEsp(w: Where): string {
  if (!w.esp) throw new Error("no ESP found (looked for loader/ under /efi, /boot/efi, /boot); pass --esp DIR");
  return w.esp;
}
