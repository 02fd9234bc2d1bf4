// Streams bytes into a content-addressed blob of an OCI layout (blobs/sha256/<hex>): written to a
// temp file, fsynced, renamed to its digest. gzip as zlib writes it has a fixed header (no name,
// mtime 0), so the same input and zlib give the same blob.
import { nodeCrypto } from "../system/node-crypto.ts";
import { closeSync, createWriteStream, fsyncSync, mkdirSync, openSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

export interface WrittenBlob {
  digest: string;
  size: number;
}

export interface WrittenLayer extends WrittenBlob {
  /** sha256 of the uncompressed tar: the config's rootfs.diff_ids entry. */
  diffId: string;
}

/** gzip level: fixed, since another level gives other bytes. */
export const GZIP_LEVEL = 6;

function finish(layout: string, tmp: string, hex: string): string {
  const fd = openSync(tmp, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const dest = join(layout, "blobs", "sha256", hex);
  renameSync(tmp, dest);
  return `sha256:${hex}`;
}

function tmpPath(layout: string): string {
  const dir = join(layout, "blobs", "sha256");
  mkdirSync(dir, { recursive: true });
  return join(dir, `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
}

export async function writeLayerBlob(layout: string, tar: Iterable<Buffer>): Promise<WrittenLayer> {
  const tmp = tmpPath(layout);
  const raw = nodeCrypto().createHash("sha256");
  const packed = nodeCrypto().createHash("sha256");
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      packed.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  function* hashed(): Generator<Buffer> {
    for (const b of tar) {
      raw.update(b);
      yield b;
    }
  }
  await pipeline(Readable.from(hashed()), createGzip({ level: GZIP_LEVEL }), count, createWriteStream(tmp));
  const hex = packed.digest("hex");
  return { digest: finish(layout, tmp, hex), size, diffId: `sha256:${raw.digest("hex")}` };
}

export function writeJsonBlob(layout: string, text: string): WrittenBlob {
  const data = Buffer.from(text);
  const tmp = tmpPath(layout);
  writeFileSync(tmp, data);
  const hex = nodeCrypto().createHash("sha256").update(data).digest("hex");
  return { digest: finish(layout, tmp, hex), size: data.length };
}
