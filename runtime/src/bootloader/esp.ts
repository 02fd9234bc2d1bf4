// Kernels and initramfs images on the ESP, stored once per content digest:
//   <esp>/particle/<sha256 of the file>/vmlinuz | initrd.img
// Deployments with the same kernel share one copy; the ESP is small (hundreds of MiB) and a
// no-hostonly initramfs alone is tens of MiB. Files are copied to a dot-named temp file (which
// systemd-boot ignores), fsynced, then renamed, so a name under particle/ is always complete.
import { nodeCrypto } from "../system/node-crypto.ts";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, rmSync, statSync, writeSync, constants } from "node:fs";
import { join } from "node:path";
import { fsyncDir, renameAtomic } from "../system/atomic.ts";

export const ESP_DIR = "particle";
export type BootFileName = "vmlinuz" | "initrd.img";

/** The entry's path for a file: ESP-absolute, forward slashes (systemd-boot converts them). */
export function bootFileEntryPath(digest: string, name: BootFileName): string {
  return `/${ESP_DIR}/${digest}/${name}`;
}

/** The digest directory an entry path like /particle/<digest>/vmlinuz names, if it is ours. */
export function digestOfEntryPath(p: string): string | undefined {
  const m = /^\/?particle\/([0-9a-f]{64})\/[^/]+$/.exec(p);
  return m?.[1];
}

export function sha256OfFile(path: string): string {
  const h = nodeCrypto().createHash("sha256");
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/** Bytes the ESP must still receive for these files (those whose digest is already there cost 0). */
export function bytesToInstall(esp: string, files: ReadonlyArray<{ path: string; digest: string; name: BootFileName }>): number {
  return files.reduce((sum, f) => sum + (existsSync(join(esp, ESP_DIR, f.digest, f.name)) ? 0 : statSync(f.path).size), 0);
}

function copyFileDurably(src: string, dst: string): void {
  const tmp = join(join(dst, ".."), `.${Date.now()}-${process.pid}.tmp`);
  const inFd = openSync(src, constants.O_RDONLY);
  const outFd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n; (n = readSync(inFd, buf, 0, buf.length, null)) > 0;) {
      for (let off = 0; off < n;) off += writeSync(outFd, buf, off, n - off);
    }
    fsyncSync(outFd);
  } catch (e) {
    closeSync(outFd);
    rmSync(tmp, { force: true });
    throw new Error(`copying ${src} to ${dst}: ${(e as Error).message}`);
  } finally {
    closeSync(inFd);
  }
  closeSync(outFd);
  renameAtomic(tmp, dst);
}

/**
 * Puts `src` on the ESP under its digest (unless that digest is already there) and returns the
 * path the entry names. Must complete before the entry is written.
 */
export function installBootFile(esp: string, src: string, name: BootFileName, digest = sha256OfFile(src)): string {
  const dir = join(esp, ESP_DIR, digest);
  const dst = join(dir, name);
  if (!existsSync(dst)) {
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true });
      fsyncDir(join(esp, ESP_DIR));
    }
    copyFileDurably(src, dst);
  }
  return bootFileEntryPath(digest, name);
}

/** The digest directories present on the ESP. */
export function listBootDirs(esp: string): string[] {
  const root = join(esp, ESP_DIR);
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((d) => /^[0-9a-f]{64}$/.test(d));
}

/** Removes a digest directory; only after no entry names it (cleanup removes entries first). */
export function removeBootDir(esp: string, digest: string): void {
  rmSync(join(esp, ESP_DIR, digest), { recursive: true, force: true });
  fsyncDir(join(esp, ESP_DIR));
}

/** Temp files a crash left behind (dot names inside digest dirs). */
export function removeStaleTemps(esp: string): void {
  for (const d of listBootDirs(esp)) {
    const dir = join(esp, ESP_DIR, d);
    for (const f of readdirSync(dir)) if (f.startsWith(".")) rmSync(join(dir, f), { force: true });
  }
}
