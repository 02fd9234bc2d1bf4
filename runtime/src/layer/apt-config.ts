// Which apt configuration a layer run uses. On a booted system the administrator edits the live
// /etc/apt (sources, keys, proxies), which the overlay keeps in the deployment's /etc upper; the
// image's /etc/apt is only where that started. rpm-ostree reads the booted /etc/yum.repos.d the
// same way. Elsewhere (a sysroot that is not running, the host tests) the tree's own is used.
import { existsSync } from "node:fs";
import { resolveWhere } from "../deployments/where.ts";

/** Default location of the live configuration. */
export const LIVE_APT_ETC = "/etc/apt";

/** --apt-config DIR, else the live /etc/apt on a system booted from particle, else none (the tree's). */
export function aptConfigFor(opts: Record<string, any>): string | undefined {
  if (opts.aptConfig !== undefined) {
    const dir = String(opts.aptConfig);
    if (!existsSync(dir)) throw new Error(`--apt-config ${dir}: no such directory`);
    return dir;
  }
  return resolveWhere(opts).bootedId && existsSync(LIVE_APT_ETC) ? LIVE_APT_ETC : undefined;
}
