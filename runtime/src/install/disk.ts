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
/** The /var partition of `--luks-var` (strict sealed mode): particle-boot finds it by this label. */
export const VAR_LABEL = "particle-var";
/**
 * Plain "Linux filesystem data", not the Discoverable Partitions /var type: systemd-gpt-auto-generator
 * acts on that type by itself, and this partition is particle-boot's alone to unlock and mount.
 */
export const VAR_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
/** LUKS2's default header and key slots take 16 MiB; below this a /var is not worth having. */
export const MIN_VAR = 64 * 1024 * 1024;

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
export function minimumDiskBytes(treeBytes?: number, varBytes = 0): number {
  const root = Math.max(MIN_ROOT, treeBytes === undefined ? 0 : Math.ceil(treeBytes * 2.2));
  return GPT_OVERHEAD + ESP_SIZE + root + varBytes;
}

export function sizeError(target: string, size: number, needed: number): Error {
  const g = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;
  return new Error(`${target} is too small: ${g(size)} (${size} bytes), but at least ${g(needed)} (${needed} bytes) are needed for the ${ESP_SIZE / 1048576} MiB ESP and the root partition`);
}

const MIB = 1024 * 1024;

/**
 * The sfdisk script: ESP first (firmware finds it fast), root takes the rest. With `varBytes` (a
 * `--luks-var` install) a third partition of that size ends the disk, and the root is sized to
 * leave room for it; it stays partition 3 so the ESP and root keep their numbers.
 */
export function sfdiskScript(varBytes = 0, diskBytes = 0): string {
  const lines = ["label: gpt", `size=${ESP_SIZE / 1024}KiB, type=${ESP_TYPE}, name="${ESP_LABEL}"`];
  if (varBytes === 0) return [...lines, `type=${ROOT_TYPE}, name="${ROOT_LABEL}"`, ""].join("\n");
  if (varBytes < MIN_VAR) throw new Error(`--luks-var ${varBytes} bytes: at least ${MIN_VAR / MIB} MiB`);
  const varMiB = Math.floor(varBytes / MIB);
  const rootMiB = Math.floor((diskBytes - GPT_OVERHEAD - ESP_SIZE) / MIB) - varMiB;
  if (rootMiB * MIB < MIN_ROOT) throw new Error(`a ${(diskBytes / 1024 ** 3).toFixed(2)} GiB disk leaves ${rootMiB} MiB for the root beside a ${varMiB} MiB /var; at least ${MIN_ROOT / MIB} MiB are needed`);
  return [...lines, `size=${rootMiB}MiB, type=${ROOT_TYPE}, name="${ROOT_LABEL}"`, `size=${varMiB}MiB, type=${VAR_TYPE}, name="${VAR_LABEL}"`, ""].join("\n");
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
