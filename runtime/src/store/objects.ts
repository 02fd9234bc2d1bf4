// Content-addressed objects. A file is read once: every chunk is hashed and written to a temp file
// in the same pass, so the stored bytes are exactly the hashed bytes even if the source is being
// written to. Objects reach objects/ only by rename, after the data is durable (see commitObjects).
//
// Paths that do not copy the bytes (issue 13), each checked against the source's stat stamp
// (size, mtime, ctime) after the object exists, so a source written to meanwhile still fails:
//   - a reflink (FICLONE) where the filesystem shares extents (btrfs, XFS): the object is cloned
//     first, the source hashed after; ext4 refuses once and every later file skips the attempt;
//   - consume (ostree's --consume): the source is hardlinked into tmp/ once hashed, and handed to
//     root with the store's mode; the caller removes the source tree after the deployment exists.
import { ftruncateSync, closeSync, fchmodSync, fchownSync, fstatSync, linkSync, openSync, readSync, readdirSync, writeSync, existsSync, mkdirSync, renameSync, unlinkSync, constants } from "node:fs";
import { join } from "node:path";
import { VerityHasher } from "../verity/digest.ts";
import { cloneFile, copyRange, nextDataRegion, startWriteback } from "../system/libc.ts";
import { sameStamp, statKey, type StatKey } from "../tree/scan.ts";
import { objectPath, type StoreLayout } from "./layout.ts";
import { CONTENT_MODE, PRIVATE_DIR_MODE } from "./private.ts";
import { checkpoint } from "../system/die-at.ts";
import { youngCollector } from "../system/memory.ts";

const CHUNK = 1 << 20;
const buffer = Buffer.allocUnsafe(CHUNK);
const ZERO_CHUNK = Buffer.alloc(CHUNK);

/** A file to ingest: where it is and the stat stamp it had when scanned. */
export interface SourceFile extends StatKey {
  path: Buffer;
}

/** How bytes reach the store; every way gives the same objects. */
export interface IngestHow {
  /** Hardlink the source into the store instead of copying (the source tree is given away). */
  consume: boolean;
  /** Copy with copy_file_range(2) instead of writing the bytes just read (kept for measurement: see docs/perf-notes.md). */
  copyRange: boolean;
}

export const PLAIN: IngestHow = { consume: false, copyRange: false };

/** Once the filesystem has refused a reflink, later files do not try again (one failed ioctl each otherwise). */
let cloneWorks = true;

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

/**
 * hasObject for many digests at once (a re-stage asks for every file the devino cache knows): the
 * 256 fan-out directories are listed on the first question, instead of one stat per file (60k
 * stats took 140-210 ms, the listing 50 ms). Built lazily, so a first stage (no cache, nothing to
 * ask) holds no listing. Valid while the caller holds the store lock: nothing else removes objects
 * then, and objects added meanwhile are the caller's own (staged, not yet under objects/).
 */
export function objectLookup(l: StoreLayout): (digest: string) => boolean {
  let have: Set<string> | undefined;
  return (digest) => {
    if (!have) {
      have = new Set();
      for (const dir of readdirSync(l.objects)) {
        if (dir.length !== 2) continue;
        for (const name of readdirSync(join(l.objects, dir))) have.add(dir + name);
      }
    }
    return have.has(digest);
  };
}

/** Reads `file`, returns its fs-verity digest, and stages its bytes in `tmpPath` unless the store has them. */
export function ingestFile(l: StoreLayout, file: SourceFile, tmpPath: string, how: IngestHow = PLAIN): Ingested {
  const what = file.path.toString();
  let fd: number;
  try {
    fd = openSync(file.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw new Error(`reading ${what}: ${(e as Error).message}`);
  }
  const size = file.size;
  try {
    if (how.consume) return ingestConsumed(l, file, fd, size, tmpPath, what);
    if (size <= CHUNK) return ingestSmall(l, file, fd, size, tmpPath, what, how);
    if (cloneWorks) {
      const cloned = ingestCloned(l, file, fd, size, tmpPath, what);
      if (cloned) return cloned;
    }
    return ingestLarge(l, file, fd, size, tmpPath, what, how);
  } finally {
    closeSync(fd);
  }
}

/** Creates the temp file an object is staged in. */
const createTmp = (tmpPath: string): number => openSync(tmpPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, CONTENT_MODE);

/** Reads and hashes the whole file, calling `sink` with each chunk at its offset (holes skipped). */
function hashFile(fd: number, size: number, what: string, sink?: (chunk: Buffer, at: number) => void): { digest: string; total: number } {
  const h = new VerityHasher();
  let total = 0;
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
      sink?.(chunk, total);
      total += n;
    }
    if (total < end) break; // shrank under us: reported by checkUnchanged
  }
  if (total < size && nextDataRegion(fd, total, size) === null) {
    h.updateZeros(size - total);
    total = size;
  }
  return { digest: h.digest(), total };
}

/** Stages a reflink of the source, then hashes the source; null where the filesystem cannot clone. */
function ingestCloned(l: StoreLayout, file: SourceFile, fd: number, size: number, tmpPath: string, what: string): Ingested | null {
  const out = createTmp(tmpPath);
  let ok = false;
  try {
    if (!cloneFile(out, fd)) {
      cloneWorks = false;
      return null;
    }
    // Hashed after the clone: a write in between moves the stamp, which checkUnchanged sees.
    const { digest, total } = hashFile(fd, size, what);
    checkUnchanged(fd, file, total, what);
    ok = true;
    if (hasObject(l, digest)) return { digest, bytes: total };
    return { digest, tmp: tmpPath, bytes: total };
  } finally {
    closeSync(out);
    if (!ok) try { unlinkSync(tmpPath); } catch { /* not there */ }
  }
}

/**
 * The source becomes the object: hashed, checked unchanged, then hardlinked into tmp/ and given
 * the store's owner and mode (after the check: both move its ctime). Across filesystems (EXDEV)
 * or without the right to take the file over, it is copied like any other.
 */
function ingestConsumed(l: StoreLayout, file: SourceFile, fd: number, size: number, tmpPath: string, what: string): Ingested {
  const { digest, total } = hashFile(fd, size, what);
  checkUnchanged(fd, file, total, what);
  if (hasObject(l, digest)) return { digest, bytes: total };
  try {
    linkSync(file.path, tmpPath);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EXDEV" && code !== "EPERM" && code !== "EMLINK") throw new Error(`linking ${what} into the store: ${(e as Error).message}`);
    return size <= CHUNK ? ingestSmall(l, file, fd, size, tmpPath, what, PLAIN) : ingestLarge(l, file, fd, size, tmpPath, what, PLAIN);
  }
  try {
    // Owner first: chown clears setuid/setgid, the mode is then the store's exactly.
    fchownSync(fd, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    fchmodSync(fd, CONTENT_MODE);
  } catch (e) {
    unlinkSync(tmpPath);
    throw new Error(`taking over ${what} for the store: ${(e as Error).message}`);
  }
  return { digest, tmp: tmpPath, bytes: total };
}

/** Files over one chunk: read, hash and write in one pass. */
function ingestLarge(l: StoreLayout, file: SourceFile, fd: number, size: number, tmpPath: string, what: string, how: IngestHow): Ingested {
  let out = -1;
  try {
    out = createTmp(tmpPath);
    const o = out;
    // All-zero chunks stay holes in the object.
    const { digest, total } = hashFile(fd, size, what, (chunk, at) => {
      if (chunk.length !== CHUNK || !chunk.equals(ZERO_CHUNK)) writeChunk(fd, o, chunk, at, how);
    });
    checkUnchanged(fd, file, total, what);
    ftruncateSync(out, total);
    startWriteback(out);
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
  }
}

/** Puts bytes just read (and hashed) from `fd` at `at` into the temp file. */
function writeChunk(fd: number, out: number, chunk: Buffer, at: number, how: IngestHow): void {
  let off = 0;
  if (how.copyRange) {
    // The kernel copies page cache to page cache; if the source changed since the read, the stamp check fails.
    while (off < chunk.length) {
      const n = copyRange(fd, out, at + off, chunk.length - off);
      if (n <= 0) break;
      off += n;
    }
  }
  while (off < chunk.length) off += writeSync(out, chunk, off, chunk.length - off, at + off);
}

function checkUnchanged(fd: number, file: SourceFile, total: number, what: string): void {
  const st = fstatSync(fd, { bigint: true });
  if (total !== file.size || !sameStamp(statKey(st), file)) {
    throw new Error(`${what}: file changed during staging (size ${file.size} → ${st.size}); stage again from a quiescent tree`);
  }
}

/**
 * Most files fit in one read: hash from memory first, and write a temp file only when the store
 * lacks the object. Saves the create/write/unlink of every duplicate, and the hole probing that
 * small files do not need.
 */
function ingestSmall(l: StoreLayout, file: SourceFile, fd: number, size: number, tmpPath: string, what: string, how: IngestHow): Ingested {
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
  const out = createTmp(tmpPath);
  try {
    if (cloneWorks && !cloneFile(out, fd)) cloneWorks = false;
    if (cloneWorks) checkUnchanged(fd, file, total, what);
    else writeChunk(fd, out, data, 0, how);
    startWriteback(out);
  } catch (e) {
    closeSync(out);
    try { unlinkSync(tmpPath); } catch { /* already gone */ }
    throw e;
  }
  closeSync(out);
  return { digest, tmp: tmpPath, bytes: total };
}

/** Moves staged objects into objects/ (the caller has made their data durable first). */
export function commitObjects(l: StoreLayout, staged: Iterable<[digest: string, tmp: string]>): void {
  const tick = youngCollector(2048);
  for (const [digest, tmp] of staged) {
    const dst = objectPath(l, digest);
    if (existsSync(dst)) unlinkSync(tmp);
    else renameSync(tmp, dst);
    checkpoint("stage:object-committed");
    // Each pass leaves a few path strings behind; a first stage's 57k renames piled 28 MB of them
    // on the live heap before Bun collected on its own (issue 13).
    tick();
  }
}
