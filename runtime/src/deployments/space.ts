// Free-space checks, done before anything is written so a full ESP or sysroot fails cleanly instead
// of half-way. The check is pure (numbers in, error out); statfs is read by the caller.
import { statfsSync } from "node:fs";

export interface SpaceNeed {
  /** What the space is for, e.g. "ESP /boot/efi (kernel and initramfs)". */
  what: string;
  needed: number;
  free: number;
}

/** Headroom kept free on top of the estimate: vfat and ext4 need some slack for metadata. */
export const SPACE_MARGIN = 4 * 1024 * 1024;

export const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

/** Returns an error naming every filesystem that lacks room, with the numbers, or undefined. */
export function checkSpace(needs: readonly SpaceNeed[]): Error | undefined {
  const short = needs.filter((n) => n.needed + SPACE_MARGIN > n.free);
  if (short.length === 0) return undefined;
  const lines = short.map((n) => `${n.what}: needs ${mib(n.needed)} (+${mib(SPACE_MARGIN)} margin) but only ${mib(n.free)} is free (${n.needed} bytes needed, ${n.free} free)`);
  return new Error(`not enough free space, nothing was written:\n  ${lines.join("\n  ")}`);
}

/** Bytes available to an unprivileged writer on the filesystem holding `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}
