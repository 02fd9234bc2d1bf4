// fs-verity file digests computed in userspace, bit-identical to what the kernel reports through
// FS_IOC_MEASURE_VERITY for SHA-256, 4096-byte Merkle blocks and no salt (the parameters
// FS_IOC_ENABLE_VERITY is called with in system/libc.ts). Objects are named by this digest, so
// the store can be built on a filesystem without fs-verity and sealed later.
//
// The Merkle tree: every 4 KiB data block (the last zero-padded) is hashed; the hashes are packed
// into 4 KiB blocks (zero-padded) and hashed again, level by level, until one block remains; its
// hash is the root. A file of one block has the hash of that block as root; an empty file has an
// all-zero root. The file digest is the SHA-256 of the 256-byte fsverity_descriptor holding
// version, algorithm, log2(block size), data size and root hash.
import { sha256, sha256Into } from "./sha256.ts";

export const VERITY_BLOCK = 4096;
const DIGEST = 32;
const DESCRIPTOR_SIZE = 256;
const FS_VERITY_HASH_ALG_SHA256 = 1;
const LOG_BLOCK = 12;
const ZERO_BLOCK = new Uint8Array(VERITY_BLOCK);
const ZERO_BLOCK_HASH = sha256(ZERO_BLOCK);

/** Incremental digest: feed the file's bytes in order with update(), then digest(). */
export class VerityHasher {
  private size = 0;
  /** Bytes of the current, not yet full, data block. */
  private pending = Buffer.alloc(VERITY_BLOCK);
  private pendingLen = 0;
  /** levels[i]: hashes of level i not yet packed into a full block above. */
  private levels: Buffer[] = [];
  private levelLens: number[] = [];
  /** Every block hash lands here and is copied out before the next one is made. */
  private readonly out = new Uint8Array(DIGEST);

  update(chunk: Uint8Array): void {
    let off = 0;
    this.size += chunk.length;
    if (this.pendingLen > 0) {
      const n = Math.min(VERITY_BLOCK - this.pendingLen, chunk.length);
      this.pending.set(chunk.subarray(0, n), this.pendingLen);
      this.pendingLen += n;
      off = n;
      if (this.pendingLen === VERITY_BLOCK) {
        this.pushHash(0, sha256Into(this.pending, this.out));
        this.pendingLen = 0;
      }
    }
    // Hash whole blocks straight from the caller's buffer: no copy on the hot path.
    while (chunk.length - off >= VERITY_BLOCK) {
      const block = chunk.subarray(off, off + VERITY_BLOCK);
      // Sparse files are mostly zero blocks; memcmp stops at the first non-zero byte, so this
      // costs nothing on ordinary data and skips hashing holes.
      this.pushHash(0, Buffer.compare(block, ZERO_BLOCK) === 0 ? ZERO_BLOCK_HASH : sha256Into(block, this.out));
      off += VERITY_BLOCK;
    }
    if (off < chunk.length) {
      this.pending.set(chunk.subarray(off), 0);
      this.pendingLen = chunk.length - off;
    }
  }

  /** Feeds `n` zero bytes without materialising them: holes of sparse files. */
  updateZeros(n: number): void {
    const head = this.pendingLen > 0 ? Math.min(n, VERITY_BLOCK - this.pendingLen) : 0;
    if (head > 0) {
      this.update(new Uint8Array(head));
      n -= head;
    }
    const blocks = Math.floor(n / VERITY_BLOCK);
    for (let i = 0; i < blocks; i++) this.pushHash(0, ZERO_BLOCK_HASH);
    this.size += blocks * VERITY_BLOCK;
    const tail = n - blocks * VERITY_BLOCK;
    if (tail > 0) this.update(new Uint8Array(tail));
  }

  private pushHash(level: number, h: Uint8Array): void {
    if (!this.levels[level]) {
      this.levels[level] = Buffer.alloc(VERITY_BLOCK);
      this.levelLens[level] = 0;
    }
    const buf = this.levels[level]!;
    buf.set(h, this.levelLens[level]!);
    this.levelLens[level]! += DIGEST;
    if (this.levelLens[level] === VERITY_BLOCK) {
      const up = sha256Into(buf, this.out);
      this.levelLens[level] = 0;
      buf.fill(0);
      this.levelCounts[level] = (this.levelCounts[level] ?? 0) + 1;
      this.pushHash(level + 1, up);
    }
  }
  /** How many full blocks each level has already emitted upwards. */
  private levelCounts: number[] = [];

  /** The Merkle root hash (32 bytes). */
  rootHash(): Buffer {
    if (this.size === 0) return Buffer.alloc(DIGEST);
    if (this.pendingLen > 0) {
      this.pending.fill(0, this.pendingLen);
      const h = sha256(this.pending);
      this.pendingLen = 0;
      // A file that is exactly one (partial) block: its hash is the root.
      if (this.size <= VERITY_BLOCK) return Buffer.from(h);
      this.pushHash(0, h);
    } else if (this.size === VERITY_BLOCK) {
      // One full block was hashed into level 0; it is the root itself.
      return Buffer.from(this.levels[0]!.subarray(0, DIGEST));
    }
    // Flush partial blocks bottom-up until a level consists of a single block.
    for (let level = 0; ; level++) {
      const len = this.levelLens[level] ?? 0;
      const emitted = this.levelCounts[level] ?? 0;
      const blocksAtLevel = emitted + (len > 0 ? 1 : 0);
      if (blocksAtLevel === 1 && emitted === 0) return Buffer.from(sha256(this.levels[level]!));
      if (len > 0) {
        const buf = this.levels[level]!;
        buf.fill(0, len);
        const up = sha256(buf);
        this.levelLens[level] = 0;
        this.levelCounts[level] = emitted + 1;
        this.pushHash(level + 1, up);
      }
      if (blocksAtLevel === 1 && emitted === 1 && len === 0) {
        // The single block of this level was already hashed into level+1 as its only entry.
        return Buffer.from(this.levels[level + 1]!.subarray(0, DIGEST));
      }
    }
  }

  /** The fs-verity file digest as lowercase hex. */
  digest(): string {
    const desc = Buffer.alloc(DESCRIPTOR_SIZE);
    desc[0] = 1;
    desc[1] = FS_VERITY_HASH_ALG_SHA256;
    desc[2] = LOG_BLOCK;
    desc[3] = 0;
    desc.writeBigUInt64LE(BigInt(this.size), 8);
    this.rootHash().copy(desc, 16);
    return Buffer.from(sha256(desc)).toString("hex");
  }
}

export function verityDigest(data: Uint8Array): string {
  const h = new VerityHasher();
  h.update(data);
  return h.digest();
}
