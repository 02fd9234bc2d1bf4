// Worker side of the ingest pool: hashes and stores files handed over in batches. Kept free of any
// state but the store path, so the main thread stays the only one that decides what a file is.
import { ingestFile } from "./objects.ts";
import { storeLayout } from "./layout.ts";
import { newReplies, putReply, tmpFor, unpackFile, type IngestBatch } from "./ingest-pool.ts";

declare const self: { onmessage: (e: { data: IngestBatch }) => void; postMessage: (m: unknown, transfer?: unknown[]) => void };

self.onmessage = (e) => {
  const b = e.data;
  const l = storeLayout(b.sysroot);
  const r = newReplies(b.first, b.count);
  for (let i = 0; i < b.count; i++) {
    try {
      putReply(r, ingestFile(l, unpackFile(b, i), tmpFor(b.tmpDir, b.first + i), b.how));
    } catch (err) {
      const e2 = err as NodeJS.ErrnoException;
      r.error = { message: e2.message, code: e2.code };
      break;
    }
  }
  self.postMessage(r, [r.digests.buffer, r.staged.buffer, r.bytes.buffer]);
};
