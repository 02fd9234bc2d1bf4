// Digests computed in userspace, for images on filesystems without fs-verity (and squashfs).
// Its own module so that verity.ts can load it on first use (see there).
import { closeSync, openSync, readSync, constants } from "node:fs";
import { nodeCrypto } from "../system/node-crypto.ts";
import { VerityHasher } from "../verity/digest.ts";

const CHUNK = 1 << 20;

function readChunks(path: string, f: (b: Buffer) => void): void {
  const fd = openSync(path, constants.O_RDONLY);
  const buf = Buffer.allocUnsafe(CHUNK);
  try {
    for (let n; (n = readSync(fd, buf, 0, CHUNK, null)) > 0; ) f(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** fs-verity digest computed in userspace (what the kernel would report). */
export function userspaceVerityDigest(path: string): string {
  const h = new VerityHasher();
  readChunks(path, (b) => h.update(b));
  return h.digest();
}

export function sha256File(path: string): string {
  const h = nodeCrypto().createHash("sha256");
  readChunks(path, (b) => h.update(b));
  return h.digest("hex");
}
