// Which apt configuration a layer run uses. On a booted system the administrator edits the live
// /etc/apt (sources, keys, proxies), which the overlay keeps in the deployment's /etc upper; the
// image's /etc/apt is only where that started. rpm-ostree reads the booted /etc/yum.repos.d the
// same way. Elsewhere (a sysroot that is not running, the host tests) the tree's own is used.
import { existsSync as exists, readFileSync } from "node:fs";
import { bootedIdFromCmdline } from "../deployments/booted.ts";

/** Default location of the live configuration. */
export const LIVE_APT_ETC = "/etc/apt";

const runningCmdline = (): string => {
  try { return readFileSync("/proc/cmdline", "utf8"); } catch { return ""; }
};

/** --apt-config DIR, else the live /etc/apt on a system booted from particle, else none (the tree's). */
export function aptConfigFor(opts: Record<string, any>, running: string = runningCmdline()): string | undefined {
  if (opts.aptConfig !== undefined) {
    const dir = String(opts.aptConfig);
    if (!exists(dir)) throw new Error(`--apt-config ${dir}: no such directory`);
    return dir;
  }
  // Only the running system's own command line says that /etc/apt is the booted deployment's: a
  // --cmdline given for another sysroot (tests, a disk being repaired) leaves this host's /etc/apt out.
  if (opts.cmdline !== undefined) return undefined;
  return bootedIdFromCmdline(running) && exists(LIVE_APT_ETC) ? LIVE_APT_ETC : undefined;
}
