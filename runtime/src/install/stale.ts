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

const IMAGE_FILE = "image";

/** Before attaching `image` to a loop device: a kill before recordLoop still says which image it was. */
export function recordImage(work: string, image: string): void {
  writeFileSync(join(work, IMAGE_FILE), `${realpathSync(image)}\n`);
}

/** Notes the loop device attached for `image`, so that a later install can detach it if this one dies. */
export function recordLoop(work: string, device: string, image: string): void {
  writeFileSync(join(work, LOOP_FILE), `${device} ${realpathSync(image)}\n`);
}

/** Loop devices of `image` with nothing of them mounted (a dead install's, attached before it could say which). */
async function unmountedLoopsOf(image: string): Promise<string[]> {
  const loops = (await run("losetup", ["--list", "--noheadings", "--output", "NAME", "--associated", image]).catch(() => "")).split("\n").map((x) => x.trim()).filter(Boolean);
  const sources = readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" - ")[1]?.split(" ")[1] ?? "");
  return loops.filter((d) => !sources.some((src) => src === d || src.startsWith(`${d}p`)));
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
    const detached: string[] = [];
    if (device && image) {
      // Only while the device still serves that image: its number may have been reused since.
      const back = (await run("losetup", ["--list", "--noheadings", "--output", "BACK-FILE", device]).catch(() => "")).trim();
      if (back === image) detached.push(device);
    } else if (existsSync(join(dir, IMAGE_FILE))) {
      // Killed while losetup ran: the device is not known, the image is.
      detached.push(...(await unmountedLoopsOf(readFileSync(join(dir, IMAGE_FILE), "utf8").trim())));
    }
    for (const d of detached) await run("losetup", ["-d", d]);
    rmSync(dir, { recursive: true, force: true });
    removed.push(detached.length ? `${dir} (and ${detached.join(", ")})` : dir);
  }
  return removed;
}
