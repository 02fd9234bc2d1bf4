// Disk images for the guest: an ext4 root with the verity feature (so the guest kernel can enable
// fs-verity on objects and images), filled from a host directory with mkfs.ext4 -d.
import { closeSync, openSync, writeSync } from "node:fs";
import { sh } from "./guest.ts";

/** Makes `image` an ext4 filesystem holding `srcDir`, with `freeMB` to spare for the guest's writes. */
export function makeExt4(image: string, srcDir: string, freeMB = 1024): void {
  const used = Number(sh("du", ["-sxb", srcDir]).split(/\s/)[0]);
  const mb = Math.ceil((used * 1.15) / 2 ** 20) + freeMB;
  sh("rm", ["-f", image]);
  sh("truncate", ["-s", `${mb}M`, image]);
  // -i 8192: a Debian tree is many small files, and the object store doubles them.
  sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-O", "verity", "-i", "8192", "-L", "particle-root", "-d", srcDir, image]);
}

/** Overwrites the first data block of `path` (inside the ext4 `image`) with garbage, bypassing
 *  fs-verity: what a bad sector or an offline attacker does. */
export function corruptFile(image: string, path: string): void {
  const out = sh("debugfs", ["-R", `bmap ${path} 0`, image]).trim();
  const block = Number(out.split("\n").pop());
  if (!Number.isInteger(block) || block <= 0) throw new Error(`debugfs bmap ${path}: ${out}`);
  const fd = openSync(image, "r+");
  try {
    writeSync(fd, Buffer.alloc(512, 0x5a), 0, 512, block * 4096);
  } finally {
    closeSync(fd);
  }
}

/** Reads a file out of the ext4 image without mounting it. */
export function readFromImage(image: string, path: string): string {
  return sh("debugfs", ["-R", `cat ${path}`, image]);
}
