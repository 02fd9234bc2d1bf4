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
