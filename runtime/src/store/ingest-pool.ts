// Reading and hashing is the cost of staging, and it parallelises per file. Under Bun the files are
// spread over one worker per core (batches keep message overhead small); elsewhere (Node, vitest)
// or for a handful of files they are ingested on this thread with the same function.
//
// Memory (issue 13): jobs are built one batch at a time as workers ask for them, not for the whole
// tree up front, and the workers run with Bun's small-heap setting; each holds one 1 MiB buffer.
import { mkdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { ingestFile, type IngestHow, type Ingested, type SourceFile } from "./objects.ts";
import { storeLayout } from "./layout.ts";
import { youngCollector } from "../system/memory.ts";
import { putStatKey, STAT_KEY_FIELDS } from "../tree/scan.ts";

/**
 * A batch of consecutive files, `first` to `first + count - 1`, packed into three arrays that are
 * transferred, not copied. A job object per file, with the file's path `Buffer` in it, cost the
 * main thread ~26 MB that grew through the ingest: cloning a `Buffer` for a message gives it an
 * `ArrayBuffer` of its own, which then lived on in the tree model (issue 13).
 */
export interface IngestBatch {
  sysroot: string;
  tmpDir: string;
  how: IngestHow;
  first: number;
  count: number;
  /** Every path's bytes, one after the other; path i ends at `ends[i]`. */
  paths: Uint8Array;
  ends: Uint32Array;
  /** STAT_KEY_FIELDS numbers per file, in StatKey's order. */
  keys: Float64Array;
}

/**
 * A worker's answer for a batch's files first to first + count - 1, in three arrays that are
 * transferred: each file's digest as 32 bytes, whether its bytes were staged (at tmpFor(tmpDir, n)),
 * and the bytes added. An object with a 64-digit string per file was ~200 bytes of garbage a file on
 * the main thread, which the collector let pile up through the ingest, the first stage's peak at
 * 630k files (issue 13). `error` is the file after the last answered one, which failed.
 */
export interface IngestReplies {
  first: number;
  count: number;
  digests: Uint8Array;
  staged: Uint8Array;
  bytes: Float64Array;
  error?: { message: string; code?: string };
}

/**
 * What ingestAll says of file i: its digest is the 32 bytes at `digests[at…]` (valid only during the
 * call), its bytes were staged at tmpFor(tmpDir, i) or not, and `bytes` were added.
 */
export type OnIngested = (i: number, digests: Uint8Array, at: number, staged: boolean, bytes: number) => void;

/** Replies for `count` files from `first`, filled in by `put`. */
export function newReplies(first: number, count: number): IngestReplies {
  return { first, count: 0, digests: new Uint8Array(count * DIGEST_BYTES), staged: new Uint8Array(count), bytes: new Float64Array(count) };
}

/** Records the next file's answer (its digest as 64 hex digits). */
export function putReply(r: IngestReplies, got: Ingested): void {
  const k = r.count++;
  Buffer.from(r.digests.buffer, r.digests.byteOffset, r.digests.byteLength).write(got.digest, k * DIGEST_BYTES, DIGEST_BYTES, "hex");
  r.staged[k] = got.tmp === undefined ? 0 : 1;
  r.bytes[k] = got.bytes;
}

const DIGEST_BYTES = 32;

/** Packs files[first, first + count) for a worker. */
export function packBatch(files: SourceFile[], first: number, count: number, rest: Pick<IngestBatch, "sysroot" | "tmpDir" | "how">): IngestBatch {
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += files[first + i]!.path.length;
  const paths = new Uint8Array(bytes);
  const ends = new Uint32Array(count);
  const keys = new Float64Array(count * STAT_KEY_FIELDS);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const f = files[first + i]!;
    paths.set(f.path, at);
    ends[i] = at += f.path.length;
    putStatKey(keys, i * STAT_KEY_FIELDS, f);
  }
  return { ...rest, first, count, paths, ends, keys };
}

/** The i-th file of a packed batch, as ingestFile takes it; its path is a view of the batch's bytes. */
export function unpackFile(b: IngestBatch, i: number): SourceFile {
  const k = i * STAT_KEY_FIELDS;
  const keys = b.keys;
  const start = i === 0 ? 0 : b.ends[i - 1]!;
  return {
    path: Buffer.from(b.paths.buffer, b.paths.byteOffset + start, b.ends[i]! - start),
    dev: keys[k]!, ino: keys[k + 1]!, size: keys[k + 2]!,
    mtimeSec: keys[k + 3]!, mtimeNsec: keys[k + 4]!, ctimeSec: keys[k + 5]!, ctimeNsec: keys[k + 6]!,
  };
}

const BATCH = 64;
/** Files read on this thread between young collections. */
const YOUNG_EVERY = 256;
/**
 * Workers pay for themselves only with enough to do: starting two cost more than reading a
 * re-stage's 600 changed files (19 MB) on this thread. Either bound brings them in.
 */
const MIN_FILES_FOR_WORKERS = 2048;
const MIN_BYTES_FOR_WORKERS = 64 * 2 ** 20;
/** Temp files are spread over this many directories: one directory of 60k new entries made every create slower. */
const TMP_FANOUT = 64;

/** Where the n-th file's bytes are staged until the store is durable. */
export const tmpFor = (tmpDir: string, n: number): string => join(tmpDir, (n % TMP_FANOUT).toString(16), String(n));

class IngestError extends Error {
  constructor(message: string, public code?: string) {
    super(message);
  }
}

/** Reads `files[i]` only before `onDone(i, …)`, so the caller may let the record go from there on. */
export async function ingestAll(sysroot: string, files: SourceFile[], tmpDir: string, how: IngestHow, onDone: OnIngested): Promise<void> {
  for (let i = 0; i < TMP_FANOUT; i++) mkdirSync(join(tmpDir, i.toString(16)), { recursive: true });
  const Bun = (globalThis as any).Bun;
  const workers = Math.min(availableParallelism(), 8);
  if (!Bun || workers < 2 || !worthWorkers(files)) {
    const l = storeLayout(sysroot);
    const tick = youngCollector(YOUNG_EVERY);
    const one = newReplies(0, 1);
    files.forEach((f, i) => {
      one.count = 0;
      putReply(one, ingestFile(l, f, tmpFor(tmpDir, i), how));
      onDone(i, one.digests, 0, one.staged[0] === 1, one.bytes[0]!);
      // Reading on this thread leaves each file's garbage on the heap that holds the tree model,
      // which Bun lets grow to about twice its live size: a one-core machine's first stage of the
      // 60k-file tree peaked at 273 MiB without these collections (issue 13).
      tick();
    });
    return;
  }
  // Big files first would balance better, but source order keeps reads sequential on disk.
  let next = 0;
  let failed: IngestError | undefined;
  const pool: Worker[] = [];
  await new Promise<void>((resolve, reject) => {
    let active = 0;
    const feed = (w: Worker) => {
      if (failed || next >= files.length) {
        if (--active === 0) (failed ? reject(failed) : resolve());
        return;
      }
      const count = Math.min(BATCH, files.length - next);
      const batch = packBatch(files, next, count, { sysroot, tmpDir, how });
      next += count;
      w.postMessage(batch, [batch.paths.buffer, batch.ends.buffer, batch.keys.buffer] as ArrayBuffer[]);
    };
    for (let i = 0; i < workers; i++) {
      const w = new Worker(workerUrl(), { smol: true } as WorkerOptions);
      pool.push(w);
      active++;
      w.onmessage = (e: MessageEvent<IngestReplies>) => {
        const r = e.data;
        for (let k = 0; k < r.count; k++) onDone(r.first + k, r.digests, k * DIGEST_BYTES, r.staged[k] === 1, r.bytes[k]!);
        if (r.error) failed ??= new IngestError(r.error.message, r.error.code);
        feed(w);
      };
      w.onerror = (e: ErrorEvent) => {
        failed ??= new IngestError(`ingest worker: ${e.message}`);
        if (--active === 0) reject(failed);
      };
      feed(w);
    }
  }).finally(() => {
    for (const w of pool) w.terminate();
  });
}

function worthWorkers(files: SourceFile[]): boolean {
  if (files.length >= MIN_FILES_FOR_WORKERS) return true;
  let bytes = 0;
  for (const f of files) if ((bytes += f.size) >= MIN_BYTES_FOR_WORKERS) return true;
  return false;
}

/** The worker's entry. In the compiled executable it is an embedded module (`bun build --compile
 *  main.ts store/ingest-worker.ts` puts it at /$bunfs/root/store/ingest-worker.js). There the
 *  bundler has replaced import.meta.url with the build machine's source path, so
 *  `new URL("./ingest-worker.ts", import.meta.url)` only worked where the checkout exists (not on an
 *  installed system); Bun.main (/$bunfs/root/particle) tells the compiled case apart. */
function workerUrl(): string {
  const main = (globalThis as { Bun?: { main?: string } }).Bun?.main ?? "";
  if (main.startsWith("/$bunfs/")) return "/$bunfs/root/store/ingest-worker.js";
  return new URL("./ingest-worker.ts", import.meta.url).href;
}
