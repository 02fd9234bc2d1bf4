// What a killed `particle install` leaves behind: its work directory in the temp dir, the disk's
// root filesystem mounted there, and the disk image's loop device. The next install clears them
// before it looks at its target (as cleanTmp does for the store), so a kill never leaves a disk
// image that only `losetup -d` by hand makes usable again.
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../system/exec.ts";
import { unmountTree } from "../mounts/index.ts";

const PREFIX = "particle-install-";
const LOOP_FILE = "loop";

/** The work directory's name prefix: the pid tells a live install's directory from a dead one's. */
export const workDirPrefix = (pid = process.pid): string => `${PREFIX}${pid}-`;

/** Notes the loop device attached for `image`, so that a later install can detach it if this one dies. */
export function recordLoop(work: string, device: string, image: string): void {
  writeFileSync(join(work, LOOP_FILE), `${device} ${realpathSync(image)}\n`);
}

/** Pure: the pid a work directory name carries, or undefined when it is not one. */
export function pidOfWorkDir(name: string): number | undefined {
  const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
  return m ? Number(m[1]) : undefined;
}

function isLiveParticle(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("install");
  } catch {
    return false;
  }
}

/** Unmounts, detaches and removes what dead installs left under `tmp`. Returns what it removed. */
export async function clearStaleInstalls(tmp: string): Promise<string[]> {
  const removed: string[] = [];
  if (!existsSync(tmp)) return removed;
  for (const name of readdirSync(tmp)) {
    const pid = pidOfWorkDir(name);
    if (pid === undefined || isLiveParticle(pid)) continue;
    const dir = join(tmp, name);
    unmountTree(dir, { lazy: true });
    const rec = existsSync(join(dir, LOOP_FILE)) ? readFileSync(join(dir, LOOP_FILE), "utf8").trim().split(" ") : [];
    const [device, image] = rec;
    if (device && image) {
      // Only while the device still serves that image: its number may have been reused since.
      const back = (await run("losetup", ["--list", "--noheadings", "--output", "BACK-FILE", device]).catch(() => "")).trim();
      if (back === image) await run("losetup", ["-d", device]);
    }
    rmSync(dir, { recursive: true, force: true });
    removed.push(device && image ? `${dir} (and ${device})` : dir);
  }
  return removed;
}
