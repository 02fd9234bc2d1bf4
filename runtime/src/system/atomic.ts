// Durable writes. Anything a reboot depends on goes: temp file in the same directory, fsync, rename,
// fsync the directory — so a power cut leaves either the old or the new file, never a torn one.
import { closeSync, fsyncSync, openSync, renameSync, writeSync, unlinkSync, constants } from "node:fs";
import { dirname, basename, join } from "node:path";
import { checkpoint } from "./die-at.ts";

let counter = 0;
const tmpName = (path: string) => join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${counter++}`);

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `data` to `path` atomically and durably. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tmpName(path);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    checkpoint("atomic:temp-written");
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw new Error(`writing ${path}: ${(e as Error).message}`);
  }
  closeSync(fd);
  renameAtomic(tmp, path);
}

/** rename(2) then fsync of the target's directory (and the source's, when it differs). */
export function renameAtomic(from: string, to: string): void {
  renameSync(from, to);
  checkpoint("atomic:renamed");
  fsyncDir(dirname(to));
  if (dirname(from) !== dirname(to)) fsyncDir(dirname(from));
}
