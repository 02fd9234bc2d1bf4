// The object digests of a tree being staged, 32 bytes each in one buffer (issue 13).
//
// A digest held as a 64-digit string cost 154 bytes in Bun (measured), and a first stage of the 63k
// tree kept one per file until its deployment was written; the staged-object map keyed on the same
// strings. Here each distinct digest is stored once, as bytes, and a file's data is an ObjectRef:
// its `digest` is made from the bytes when asked, which the image phase does once per file.
import type { FileData } from "./model.ts";

const DIGEST_BYTES = 32;
const HEX64 = /^[0-9a-f]{64}$/;

/** Distinct sha256/fs-verity digests, numbered in the order they were first seen. */
export class DigestTable {
  private bytes: Buffer;
  private count = 0;
  /** Open addressing on the digest's first four bytes (already uniformly spread): index + 1, or 0. */
  private slots: Int32Array;
  private mask: number;
  private readonly probe = Buffer.alloc(DIGEST_BYTES);

  constructor(expected = 1024) {
    const cap = Math.max(16, expected);
    this.bytes = Buffer.alloc(cap * DIGEST_BYTES);
    this.slots = new Int32Array(pow2Above(cap * 2));
    this.mask = this.slots.length - 1;
  }

  get size(): number {
    return this.count;
  }

  /** The number of `hex` (64 lowercase hex digits), added if it is new. */
  intern(hex: string): number {
    if (!HEX64.test(hex)) throw new Error(`not a sha256 digest (64 lowercase hex digits): ${JSON.stringify(hex.slice(0, 80))}`);
    this.probe.write(hex, 0, DIGEST_BYTES, "hex");
    return this.internProbe();
  }

  /** The number of the 32 bytes at `src[at…]`, added if they are new. */
  internBytes(src: Uint8Array, at: number): number {
    if (at < 0 || at + DIGEST_BYTES > src.length) throw new RangeError(`digest bytes at ${at} of ${src.length}`);
    // A byte loop, not set(subarray): a view per call is garbage, and this runs once per file read.
    const p = this.probe;
    for (let k = 0; k < DIGEST_BYTES; k++) p[k] = src[at + k]!;
    return this.internProbe();
  }

  /** Copies digest `n`'s 32 bytes to `out[at…]`. */
  copyBytes(n: number, out: Uint8Array, at: number): void {
    if (n < 0 || n >= this.count) throw new RangeError(`digest ${n} of ${this.count}`);
    const b = this.bytes;
    const from = n * DIGEST_BYTES;
    for (let k = 0; k < DIGEST_BYTES; k++) out[at + k] = b[from + k]!;
  }

  /** Room for `total` digests, when the caller learns how many may come after the table was made. */
  reserve(total: number): void {
    if (total * DIGEST_BYTES > this.bytes.length) {
      const next = Buffer.alloc(total * DIGEST_BYTES);
      this.bytes.copy(next, 0, 0, this.count * DIGEST_BYTES);
      this.bytes = next;
    }
    if (total * 2 > this.slots.length) this.rehash(pow2Above(total * 2));
  }

  private internProbe(): number {
    let s = this.probe.readUInt32LE(0) & this.mask;
    for (;;) {
      const at = this.slots[s]!;
      if (at === 0) break;
      if (this.bytes.compare(this.probe, 0, DIGEST_BYTES, (at - 1) * DIGEST_BYTES, at * DIGEST_BYTES) === 0) return at - 1;
      s = (s + 1) & this.mask;
    }
    if ((this.count + 1) * DIGEST_BYTES > this.bytes.length) this.growBytes();
    const n = this.count++;
    this.probe.copy(this.bytes, n * DIGEST_BYTES);
    this.slots[s] = n + 1;
    if (this.count * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    return n;
  }

  hex(n: number): string {
    if (n < 0 || n >= this.count) throw new RangeError(`digest ${n} of ${this.count}`);
    return this.bytes.toString("hex", n * DIGEST_BYTES, (n + 1) * DIGEST_BYTES);
  }

  /** A file's data: object number `n` of this table. */
  ref(n: number): ObjectRef {
    return new ObjectRef(this, n);
  }

  /** The number of a file's object digest: read off an ObjectRef of this table, interned otherwise. */
  numberOf(data: { readonly digest: string }): number {
    return data instanceof ObjectRef && data.table === this ? data.n : this.intern(data.digest);
  }

  /**
   * The digests numbered `ns`, sorted by their bytes, each once, back to back: a deployment's object
   * list without a 64-digit string per file (~9 MB at the end of a 60k-file stage).
   */
  sortedBytes(ns: number[]): Buffer {
    const b = this.bytes;
    // The first four bytes decide almost every comparison without a call into Buffer.compare.
    const lead = new Uint32Array(this.count);
    for (let n = 0; n < this.count; n++) lead[n] = b.readUInt32BE(n * DIGEST_BYTES);
    const sorted = ns.slice().sort((x, y) => lead[x]! - lead[y]! || b.compare(b, y * DIGEST_BYTES, (y + 1) * DIGEST_BYTES, x * DIGEST_BYTES, (x + 1) * DIGEST_BYTES));
    const out = Buffer.allocUnsafe(sorted.length * DIGEST_BYTES);
    let at = 0;
    for (let i = 0; i < sorted.length; i++) {
      // One number per distinct digest: repeats are adjacent and equal.
      if (i > 0 && sorted[i] === sorted[i - 1]) continue;
      b.copy(out, at, sorted[i]! * DIGEST_BYTES, (sorted[i]! + 1) * DIGEST_BYTES);
      at += DIGEST_BYTES;
    }
    return out.subarray(0, at);
  }

  private growBytes(): void {
    const next = Buffer.alloc(this.bytes.length * 2);
    this.bytes.copy(next);
    this.bytes = next;
  }

  private rehash(size: number): void {
    this.slots = new Int32Array(size);
    this.mask = this.slots.length - 1;
    for (let n = 0; n < this.count; n++) {
      let s = this.bytes.readUInt32LE(n * DIGEST_BYTES) & this.mask;
      while (this.slots[s] !== 0) s = (s + 1) & this.mask;
      this.slots[s] = n + 1;
    }
  }
}

/** `{ kind: "object", digest }`, with the digest kept as bytes in a DigestTable. */
export class ObjectRef {
  constructor(readonly table: DigestTable, readonly n: number) {}

  // On the prototype, not a field: one slot less in each of 60k objects.
  get kind(): "object" {
    return "object";
  }

  get digest(): string {
    return this.table.hex(this.n);
  }

  /** What a plain object would be: for JSON, spreads and deep-equality in tests. */
  toJSON(): Extract<FileData, { kind: "object" }> {
    return { kind: "object", digest: this.digest };
  }
}

function pow2Above(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}
