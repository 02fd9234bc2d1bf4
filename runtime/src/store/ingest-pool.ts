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
import type { StatKey } from "../tree/scan.ts";

export interface IngestJob {
  n: number;
  path: Uint8Array;
  key: StatKey;
}

export interface IngestBatch {
  sysroot: string;
  tmpDir: string;
  how: IngestHow;
  jobs: IngestJob[];
}

export type IngestReply = { n: number; digest: string; tmp?: string; bytes: number } | { n: number; error: string; code?: string };

const BATCH = 64;
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

export async function ingestAll(sysroot: string, files: SourceFile[], tmpDir: string, how: IngestHow, onDone: (i: number, r: Ingested) => void): Promise<void> {
  for (let i = 0; i < TMP_FANOUT; i++) mkdirSync(join(tmpDir, i.toString(16)), { recursive: true });
  const Bun = (globalThis as any).Bun;
  const workers = Math.min(availableParallelism(), 8);
  if (!Bun || workers < 2 || !worthWorkers(files)) {
    const l = storeLayout(sysroot);
    files.forEach((f, i) => onDone(i, ingestFile(l, f, tmpFor(tmpDir, i), how)));
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
      const jobs: IngestJob[] = [];
      for (const end = Math.min(next + BATCH, files.length); next < end; next++) {
        const f = files[next]!;
        jobs.push({ n: next, path: f.path, key: { dev: f.dev, ino: f.ino, size: f.size, mtimeSec: f.mtimeSec, mtimeNsec: f.mtimeNsec, ctimeSec: f.ctimeSec, ctimeNsec: f.ctimeNsec } });
      }
      const batch: IngestBatch = { sysroot, tmpDir, how, jobs };
      w.postMessage(batch);
    };
    for (let i = 0; i < workers; i++) {
      const w = new Worker(workerUrl(), { smol: true } as WorkerOptions);
      pool.push(w);
      active++;
      w.onmessage = (e: MessageEvent<IngestReply[]>) => {
        for (const r of e.data) {
          if ("error" in r) failed ??= new IngestError(r.error, r.code);
          else onDone(r.n, { digest: r.digest, tmp: r.tmp, bytes: r.bytes });
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
