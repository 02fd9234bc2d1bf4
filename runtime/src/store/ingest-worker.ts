// Worker side of the ingest pool: hashes and stores files handed over in batches. Kept free of any
// state but the store path, so the main thread stays the only one that decides what a file is.
import { ingestFile } from "./objects.ts";
import { storeLayout } from "./layout.ts";
import type { IngestJob, IngestReply } from "./ingest-pool.ts";

declare const self: { onmessage: (e: { data: { sysroot: string; jobs: IngestJob[] } }) => void; postMessage: (m: unknown) => void };

self.onmessage = (e) => {
  const l = storeLayout(e.data.sysroot);
  const replies: IngestReply[] = [];
  for (const j of e.data.jobs) {
    try {
      const key = { dev: BigInt(j.key[0]), ino: BigInt(j.key[1]), size: BigInt(j.key[2]), mtimeNs: BigInt(j.key[3]), ctimeNs: BigInt(j.key[4]) };
      const r = ingestFile(l, { path: Buffer.from(j.path), key }, j.tmp);
      replies.push({ n: j.n, digest: r.digest, tmp: r.tmp, bytes: r.bytes });
    } catch (err) {
      const e2 = err as NodeJS.ErrnoException;
      replies.push({ n: j.n, error: e2.message, code: e2.code });
      break;
    }
  }
  self.postMessage(replies);
};
