// Worker side of the ingest pool: hashes and stores files handed over in batches. Kept free of any
// state but the store path, so the main thread stays the only one that decides what a file is.
import { ingestFile } from "./objects.ts";
import { storeLayout } from "./layout.ts";
import { tmpFor, unpackFile, type IngestBatch, type IngestReply } from "./ingest-pool.ts";

declare const self: { onmessage: (e: { data: IngestBatch }) => void; postMessage: (m: unknown) => void };

self.onmessage = (e) => {
  const b = e.data;
  const l = storeLayout(b.sysroot);
  const replies: IngestReply[] = [];
  for (let i = 0; i < b.count; i++) {
    const n = b.first + i;
    try {
      const r = ingestFile(l, unpackFile(b, i), tmpFor(b.tmpDir, n), b.how);
      replies.push({ n, digest: r.digest, tmp: r.tmp !== undefined, bytes: r.bytes });
    } catch (err) {
      const e2 = err as NodeJS.ErrnoException;
      replies.push({ n, error: e2.message, code: e2.code });
      break;
    }
  }
  self.postMessage(replies);
};
