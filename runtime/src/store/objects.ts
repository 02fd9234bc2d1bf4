// Content-addressed objects. A file is read once: every chunk is hashed and written to a temp file
// in the same pass, so the stored bytes are exactly the hashed bytes even if the source is being
// written to. Objects reach objects/ only by rename, after the data is durable (see commitObjects).
import { ftruncateSync, closeSync, fstatSync, openSync, readSync, writeSync, existsSync, mkdirSync, renameSync, unlinkSync, constants } from "node:fs";
import { join } from "node:path";
import { VerityHasher } from "../verity/digest.ts";
import { nextDataRegion } from "../system/libc.ts";
import type { ScannedFile } from "../tree/scan.ts";
import { objectPath, type StoreLayout } from "./layout.ts";
import { CONTENT_MODE, PRIVATE_DIR_MODE } from "./private.ts";
import { checkpoint } from "../system/die-at.ts";

const CHUNK = 1 << 20;
const buffer = Buffer.allocUnsafe(CHUNK);
const ZERO_CHUNK = Buffer.alloc(CHUNK);

export interface Ingested {
  digest: string;
  /** Temp file holding the content, when the store does not have the object yet. */
  tmp?: string;
  bytes: number;
}

export function ensureObjectDirs(l: StoreLayout): void {
  for (let i = 0; i < 256; i++) mkdirSync(join(l.objects, i.toString(16).padStart(2, "0")), { recursive: true, mode: PRIVATE_DIR_MODE });
}

export function hasObject(l: StoreLayout, digest: string): boolean {
  return existsSync(objectPath(l, digest));
}

/** Reads `file`, returns its fs-verity digest, and stages its bytes in `tmpPath` unless the store has them. */
export function ingestFile(l: StoreLayout, file: ScannedFile, tmpPath: string): Ingested {
  const what = file.path.toString();
  let fd: number;
  try {
    fd = openSync(file.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw new Error(`reading ${what}: ${(e as Error).message}`);
  }
  const size = Number(file.key.size);
  if (size <= CHUNK) {
    try {
      return ingestSmall(l, file, fd, size, tmpPath, what);
    } finally {
      closeSync(fd);
    }
  }
  let out = -1;
  try {
    const h = new VerityHasher();
    let total = 0;
    out = openSync(tmpPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, CONTENT_MODE);
    // Holes are neither read nor written: a sparse source gives a sparse object, and a 5 GiB
    // file of holes costs a few lseeks.
    for (let region = nextDataRegion(fd, 0, size); region; region = nextDataRegion(fd, total, size)) {
      const [start, end] = region;
      if (start > total) {
        h.updateZeros(start - total);
        total = start;
      }
      while (total < end) {
        let n: number;
        try {
          n = readSync(fd, buffer, 0, Math.min(CHUNK, end - total), total);
        } catch (e) {
          throw new Error(`reading ${what}: ${(e as Error).message}`);
        }
        if (n === 0) break;
        const chunk = buffer.subarray(0, n);
        h.update(chunk);
        if (n !== CHUNK || !chunk.equals(ZERO_CHUNK)) {
          let off = 0;
          while (off < n) off += writeSync(out, chunk, off, n - off, total + off);
        }
        total += n;
      }
      if (total < end) break; // shrank under us: reported below
    }
    if (total < size && nextDataRegion(fd, total, size) === null) {
      h.updateZeros(size - total);
      total = size;
    }
    checkUnchanged(fd, file, total, what);
    const digest = h.digest();
    ftruncateSync(out, total);
    closeSync(out);
    out = -1;
    if (hasObject(l, digest)) {
      unlinkSync(tmpPath);
      return { digest, bytes: total };
    }
    return { digest, tmp: tmpPath, bytes: total };
  } catch (e) {
    if (out >= 0) closeSync(out);
    try { unlinkSync(tmpPath); } catch { /* not created */ }
    throw e;
  } finally {
    closeSync(fd);
  }
}

function checkUnchanged(fd: number, file: ScannedFile, total: number, what: string): void {
  const st = fstatSync(fd, { bigint: true });
  if (BigInt(total) !== file.key.size || st.size !== file.key.size || st.mtimeNs !== file.key.mtimeNs || st.ctimeNs !== file.key.ctimeNs) {
    throw new Error(`${what}: file changed during staging (size ${file.key.size} → ${st.size}); stage again from a quiescent tree`);
  }
}

/**
 * Most files fit in one read: hash from memory first, and write a temp file only when the store
 * lacks the object. Saves the create/write/unlink of every duplicate, and the hole probing that
 * small files do not need.
 */
function ingestSmall(l: StoreLayout, file: ScannedFile, fd: number, size: number, tmpPath: string, what: string): Ingested {
  let total = 0;
  while (total < size) {
    let n: number;
    try {
      n = readSync(fd, buffer, total, size - total, total);
    } catch (e) {
      throw new Error(`reading ${what}: ${(e as Error).message}`);
    }
    if (n === 0) break;
    total += n;
  }
  checkUnchanged(fd, file, total, what);
  const data = buffer.subarray(0, total);
  const h = new VerityHasher();
  h.update(data);
  const digest = h.digest();
  if (hasObject(l, digest)) return { digest, bytes: total };
  const out = openSync(tmpPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, CONTENT_MODE);
  try {
    let off = 0;
    while (off < total) off += writeSync(out, data, off, total - off);
  } catch (e) {
    closeSync(out);
    try { unlinkSync(tmpPath); } catch { /* already gone */ }
    throw e;
  }
  closeSync(out);
  return { digest, tmp: tmpPath, bytes: total };
}

/** Moves staged objects into objects/ (the caller has made their data durable first). */
export function commitObjects(l: StoreLayout, staged: Map<string, string>): void {
  for (const [digest, tmp] of staged) {
    const dst = objectPath(l, digest);
    if (existsSync(dst)) unlinkSync(tmp);
    else renameSync(tmp, dst);
    checkpoint("stage:object-committed");
  }
}
