import { closeSync, openSync, readSync } from "node:fs";
import { nodeCrypto } from "../system/node-crypto.ts";
import { VerityHasher } from "./digest.ts";

const CHUNK = 1 << 20;

/** fs-verity digest of a file's content, computed in userspace. */
export function digestFile(path: string | Buffer): string {
  const h = new VerityHasher();
  readChunks(path, (c) => h.update(c));
  return h.digest();
}

/** Plain SHA-256 of a file (squashfs images, whose filesystem may lack fs-verity). */
export function sha256File(path: string | Buffer): string {
  const h = nodeCrypto().createHash("sha256");
  readChunks(path, (c) => h.update(c));
  return h.digest("hex");
}

function readChunks(path: string | Buffer, f: (chunk: Buffer) => void): void {
  const fd = openSync(path, "r");
  const buf = Buffer.allocUnsafe(CHUNK);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) break;
      f(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}
