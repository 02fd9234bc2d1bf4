// The system side of reading a layer: the blob's bytes, checked against its digest as they are
// read, decompressed on the way. gzip through node's zlib; zstd through the zstd program, since
// Node has no zstd decoder (and one code path for Bun and Node keeps the tests honest).
import { spawn } from "node:child_process";
import { nodeCrypto } from "../system/node-crypto.ts";
import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
import type { Readable } from "node:stream";
import type { Compression } from "./schema.ts";

const READ_CHUNK = 1 << 20;

export interface BlobStream {
  /** Uncompressed bytes. */
  chunks: AsyncIterable<Uint8Array>;
  /** Resolves once the blob was read to its end and its digest matched; rejects otherwise. */
  done: Promise<void>;
  /** Stops reading (after a failure downstream). */
  abort(): void;
}

/** Streams `path` decompressed; `onRead(n)` counts compressed bytes as they are read (progress). */
export function openBlob(path: string, digest: string, compression: Compression, onRead: (n: number) => void): BlobStream {
  const src = createReadStream(path, { highWaterMark: READ_CHUNK });
  const hash = nodeCrypto().createHash("sha256");
  let read = 0;
  const verified = new Promise<void>((resolve, reject) => {
    src.on("data", (c) => { hash.update(c as Buffer); read += c.length; onRead(c.length); });
    src.on("error", (e) => reject(new Error(`blob ${digest}: ${e.message}`)));
    src.on("end", () => {
      const got = `sha256:${hash.digest("hex")}`;
      if (got === digest) resolve();
      else reject(new Error(`blob ${digest} is corrupted: its ${read} bytes hash to ${got}`));
    });
  });
  // Checked after the consumer finishes, so also attach a handler now: an early failure must not
  // surface as an unhandled rejection.
  verified.catch(() => {});
  if (compression === "none") return { chunks: src, done: verified, abort: () => src.destroy() };
  if (compression === "gzip") {
    const gz = createGunzip({ chunkSize: 256 << 10 });
    src.on("error", (e) => gz.destroy(e));
    src.pipe(gz);
    return { chunks: wrapErrors(gz, `blob ${digest}: gzip`), done: verified, abort: () => { src.destroy(); gz.destroy(); } };
  }
  const z = spawn("zstd", ["-dc", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  z.stderr.on("data", (d) => { stderr += d; });
  z.stdin.on("error", () => { /* zstd exited early: its exit status says why */ });
  src.pipe(z.stdin);
  const exited = new Promise<void>((resolve, reject) => {
    z.on("error", (e) => reject(new Error(`blob ${digest}: zstd: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "command not found (install zstd)" : e.message}`)));
    z.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`blob ${digest}: zstd: ${stderr.trim() || `exit ${code}`}`))));
  });
  exited.catch(() => {});
  // The digest is the clearer message when both fail: check it first.
  const done = verified.then(() => exited);
  done.catch(() => {});
  return {
    chunks: wrapErrors(z.stdout, `blob ${digest}: zstd`),
    done,
    abort: () => { src.destroy(); z.kill(); },
  };
}

async function* wrapErrors(s: Readable, what: string): AsyncIterable<Uint8Array> {
  try {
    for await (const c of s) yield c as Uint8Array;
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
}

/** sha256 of a whole file, for the error path: tells a corrupted blob from a bad decoder. */
export async function blobMatches(path: string, digest: string): Promise<boolean> {
  const h = nodeCrypto().createHash("sha256");
  for await (const c of createReadStream(path, { highWaterMark: READ_CHUNK })) h.update(c as Buffer);
  return `sha256:${h.digest("hex")}` === digest;
}
