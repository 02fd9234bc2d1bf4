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

/** `tmp` is whether the bytes were staged (at tmpFor(tmpDir, n)): the main thread knows the path. */
export type IngestReply = { n: number; digest: string; tmp: boolean; bytes: number } | { n: number; error: string; code?: string };

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
export async function ingestAll(sysroot: string, files: SourceFile[], tmpDir: string, how: IngestHow, onDone: (i: number, r: Ingested) => void): Promise<void> {
  for (let i = 0; i < TMP_FANOUT; i++) mkdirSync(join(tmpDir, i.toString(16)), { recursive: true });
  const Bun = (globalThis as any).Bun;
  const workers = Math.min(availableParallelism(), 8);
  if (!Bun || workers < 2 || !worthWorkers(files)) {
    const l = storeLayout(sysroot);
    const tick = youngCollector(YOUNG_EVERY);
    files.forEach((f, i) => {
      onDone(i, ingestFile(l, f, tmpFor(tmpDir, i), how));
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
      w.onmessage = (e: MessageEvent<IngestReply[]>) => {
        for (const r of e.data) {
          if ("error" in r) failed ??= new IngestError(r.error, r.code);
          else onDone(r.n, { digest: r.digest, tmp: r.tmp ? tmpFor(tmpDir, r.n) : undefined, bytes: r.bytes });
        }
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
