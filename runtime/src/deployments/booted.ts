// Which deployment is running, and where the ESP is. Parsers take strings; the readers of /proc and
// of the mount points are separate and overridable, so status works on a sysroot from the host.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { getArg, splitCmdline } from "../bls/kargs.ts";
import { DeploymentId } from "../manifest.ts";

/** particle.deploy= from a kernel command line, or undefined when the system was not booted by particle. */
export function bootedIdFromCmdline(cmdline: string): string | undefined {
  const id = getArg(splitCmdline(cmdline), "particle.deploy");
  return id !== undefined && DeploymentId.safeParse(id).success ? id : undefined;
}

/** What particle-boot leaves in /run (boot/src/marker.ts). */
export const BOOTED_MARKER_PATH = "/run/particle-booted";

/** The deployment id in the text of /run/particle-booted, or undefined when it names none. */
export function bootedIdFromMarker(text: string): string | undefined {
  let id: unknown;
  try { id = (JSON.parse(text) as { id?: unknown }).id; } catch { return undefined; }
  return typeof id === "string" && DeploymentId.safeParse(id).success ? id : undefined;
}

export function readBootedId(procCmdline = "/proc/cmdline"): string | undefined {
  try {
    return bootedIdFromCmdline(readFileSync(procCmdline, "utf8"));
  } catch {
    return undefined;
  }
}

/** Where a running system has its ESP, in the order systemd looks (bootctl's --esp-path search). */
export const ESP_CANDIDATES = ["/efi", "/boot/efi", "/boot"];

export function findEsp(candidates = ESP_CANDIDATES): string | undefined {
  return candidates.find((d) => existsSync(join(d, "loader/loader.conf")) || existsSync(join(d, "loader/entries")));
}
