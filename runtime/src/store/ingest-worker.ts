// Worker side of the ingest pool: hashes and stores files handed over in batches. Kept free of any
// state but the store path, so the main thread stays the only one that decides what a file is.
import { ingestFile } from "./objects.ts";
import { storeLayout } from "./layout.ts";
import { tmpFor, type IngestBatch, type IngestReply } from "./ingest-pool.ts";

declare const self: { onmessage: (e: { data: IngestBatch }) => void; postMessage: (m: unknown) => void };

self.onmessage = (e) => {
  const { sysroot, tmpDir, how, jobs } = e.data;
  const l = storeLayout(sysroot);
  const replies: IngestReply[] = [];
  for (const j of jobs) {
    try {
      const r = ingestFile(l, { ...j.key, path: Buffer.from(j.path) }, tmpFor(tmpDir, j.n), how);
      replies.push({ n: j.n, digest: r.digest, tmp: r.tmp, bytes: r.bytes });
    } catch (err) {
      const e2 = err as NodeJS.ErrnoException;
      replies.push({ n: j.n, error: e2.message, code: e2.code });
      break;
    }
  }
  self.postMessage(replies);
};
