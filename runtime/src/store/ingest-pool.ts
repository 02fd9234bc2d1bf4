// Reading and hashing is the cost of staging, and it parallelises per file. Under Bun the files are
// spread over one worker per core (batches keep message overhead small); elsewhere (Node, vitest)
// or for a handful of files they are ingested on this thread with the same function.
import { availableParallelism } from "node:os";
import { ingestFile, type Ingested } from "./objects.ts";
import type { ScannedFile } from "../tree/scan.ts";
import { storeLayout } from "./layout.ts";

export interface IngestJob {
  n: number;
  path: Uint8Array;
  /** dev, ino, size, mtimeNs, ctimeNs as decimal strings (bigints do not cross postMessage everywhere). */
  key: [string, string, string, string, string];
  tmp: string;
}

export type IngestReply = { n: number; digest: string; tmp?: string; bytes: number } | { n: number; error: string; code?: string };

const BATCH = 64;
const MIN_FOR_WORKERS = 256;

export interface IngestRequest {
  file: ScannedFile;
  tmp: string;
}

class IngestError extends Error {
  constructor(message: string, public code?: string) {
    super(message);
  }
}

export async function ingestAll(sysroot: string, reqs: IngestRequest[], onDone: (i: number, r: Ingested) => void): Promise<void> {
  const Bun = (globalThis as any).Bun;
  const workers = Math.min(availableParallelism(), 8);
  if (!Bun || reqs.length < MIN_FOR_WORKERS || workers < 2) {
    const l = storeLayout(sysroot);
    reqs.forEach((r, i) => onDone(i, ingestFile(l, r.file, r.tmp)));
    return;
  }
  const jobs: IngestJob[] = reqs.map((r, n) => ({
    n,
    path: r.file.path,
    key: [String(r.file.key.dev), String(r.file.key.ino), String(r.file.key.size), String(r.file.key.mtimeNs), String(r.file.key.ctimeNs)],
    tmp: r.tmp,
  }));
  // Big files first would balance better, but source order keeps reads sequential on disk.
  let next = 0;
  let failed: IngestError | undefined;
  const pool: Worker[] = [];
  await new Promise<void>((resolve, reject) => {
    let active = 0;
    const feed = (w: Worker) => {
      if (failed || next >= jobs.length) {
        if (--active === 0) (failed ? reject(failed) : resolve());
        return;
      }
      const batch = jobs.slice(next, next + BATCH);
      next += batch.length;
      w.postMessage({ sysroot, jobs: batch });
    };
    for (let i = 0; i < workers; i++) {
      const w = new Worker(workerUrl());
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
