// One-shot SHA-256 of a 4 KiB block is the hot loop of staging (~500k calls for 2 GB). Bun's
// static hasher avoids allocating a hash object per block; Node (vitest) uses crypto.hash.
import { nodeCrypto } from "../system/node-crypto.ts";

const BunSHA = (globalThis as any).Bun?.SHA256;

let nodeSha256: ((data: Uint8Array) => Uint8Array) | undefined;

function onNode(): (data: Uint8Array) => Uint8Array {
  const crypto = nodeCrypto();
  return typeof (crypto as any).hash === "function"
    ? (data) => (crypto as any).hash("sha256", data, "buffer") as Buffer
    : (data) => crypto.createHash("sha256").update(data).digest();
}

export const sha256: (data: Uint8Array) => Uint8Array = BunSHA
  ? (data) => BunSHA.hash(data) as Uint8Array
  : (data) => (nodeSha256 ??= onNode())(data);

/**
 * SHA-256 of `data` written into `out` (32 bytes), which is returned. For the Merkle tree's hot loop:
 * a fresh 32-byte array per 4 KiB block was ~460k objects of garbage per 2 GB staged (issue 13).
 * The result is only valid until the next call with the same `out`.
 */
export const sha256Into: (data: Uint8Array, out: Uint8Array) => Uint8Array = BunSHA
  ? (data, out) => BunSHA.hash(data, out) as Uint8Array
  : (data, out) => {
    out.set(sha256(data));
    return out;
  };
