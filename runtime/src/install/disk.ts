// The disk layout particle installs: GPT, an ESP (vfat) and a root partition (ext4 with the verity
// feature, so images and objects can get fs-verity). Pure parts (sizes, the sfdisk script, which
// mounts use a device) are separate from the effects below them.

export const ESP_SIZE = 512 * 1024 * 1024;
/** GPT headers, alignment and a little slack. */
export const GPT_OVERHEAD = 4 * 1024 * 1024;
/** A root filesystem smaller than this cannot hold a store and one update. */
export const MIN_ROOT = 768 * 1024 * 1024;
export const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/** "Linux root (x86-64)" from the Discoverable Partitions Specification. */
export const ROOT_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
export const ESP_LABEL = "ESP";
export const ROOT_LABEL = "particle-root";

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "8G", "512M", "1.5G", "4096" (bytes) → bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(s.trim());
  if (!m) throw new Error(`--size ${s}: expected a size like 8G, 512M or a number of bytes`);
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
}

/**
 * The smallest disk that holds the ESP and a root with room for the tree twice (the deployment
 * and one update sharing little with it) plus slack; without a known tree size, MIN_ROOT.
 */
export function minimumDiskBytes(treeBytes?: number): number {
  const root = Math.max(MIN_ROOT, treeBytes === undefined ? 0 : Math.ceil(treeBytes * 2.2));
  return GPT_OVERHEAD + ESP_SIZE + root;
}

export function sizeError(target: string, size: number, needed: number): Error {
  const g = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;
  return new Error(`${target} is too small: ${g(size)} (${size} bytes), but at least ${g(needed)} (${needed} bytes) are needed for the ${ESP_SIZE / 1048576} MiB ESP and the root partition`);
}

/** The sfdisk script: ESP first (firmware finds it fast), root takes the rest. */
export function sfdiskScript(): string {
  return [
    "label: gpt",
    `size=${ESP_SIZE / 1024}KiB, type=${ESP_TYPE}, name="${ESP_LABEL}"`,
    `type=${ROOT_TYPE}, name="${ROOT_LABEL}"`,
    "",
  ].join("\n");
}

/**
 * Mount points in /proc/self/mountinfo whose device is one of `devs` ("major:minor"), so a mounted
 * disk or any of its partitions is refused before anything is written to it.
 */
export function mountsUsing(mountinfo: string, devs: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split("\n")) {
    const f = line.split(" ");
    if (f.length > 4 && devs.has(f[2]!)) out.push(f[4]!.replace(/\\040/g, " "));
  }
  return out;
}

/** Swap areas in /proc/swaps on one of `paths`. */
export function swapsUsing(swaps: string, paths: ReadonlySet<string>): string[] {
  return swaps.split("\n").slice(1).map((l) => l.split(/\s+/)[0]!).filter((p) => p && paths.has(p));
}
