// ostree's "devino cache": a file whose device, inode, size, mtime and ctime are unchanged since the
// last stage has the same content, so its digest is reused without reading it. ctime is part of
// the key because it cannot be set from userspace: any write, chmod or xattr change moves it. So
// the cache also says whether the file had xattrs: one that had none still has none, and the scan
// need not list them (60k llistxattr calls of a 60k-file re-stage, issue 13).
//
// The file is fixed-size binary records, read into typed arrays and indexed by an open-addressing
// table: the JSON form (a string per entry, parsed, looked up by a built "dev:ino" key, rendered
// again) was ~0.7 s of a 4 s re-stage and ~10 MB of strings (perf-notes §8).
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../system/atomic.ts";
import { putStatKey, type StatKey } from "../tree/scan.ts";
import { DigestTable } from "../tree/object-digests.ts";

/** The cache file's name under the store's cache/. */
export const DEVINO_FILE = "devino.bin";
/** The JSON cache of earlier versions, removed at the first save. */
const OLD_FILE = "devino.json";

const MAGIC = Buffer.from("PDEVINO\0", "latin1");
const VERSION = 3;
const HEAD = 16;
/** dev, ino, size, mtimeSec, mtimeNsec, ctimeSec, ctimeNsec, flags. */
const FIELDS = 8;
const DIGEST_BYTES = 32;
const RECORD = FIELDS * 8 + DIGEST_BYTES;
const HAS_XATTRS = 1;

/**
 * The cache file's layout: a 16-byte head (magic, version, count as host-order u32s), the records'
 * numbers as host-order float64s, then their digests. A file written on a host of the other byte
 * order reads a version that is not 3 and is ignored; a cache is only ever read where it was written.
 */
export function encodeCache(keys: Float64Array, count: number, putDigest: (n: number, out: Buffer, at: number) => void): Buffer {
  const out = Buffer.alloc(HEAD + count * RECORD);
  MAGIC.copy(out, 0);
  const head = new Uint32Array(out.buffer, out.byteOffset + 8, 2);
  head[0] = VERSION;
  head[1] = count;
  out.set(new Uint8Array(keys.buffer, keys.byteOffset, count * FIELDS * 8), HEAD);
  const digestsAt = HEAD + count * FIELDS * 8;
  for (let n = 0; n < count; n++) putDigest(n, out, digestsAt + n * DIGEST_BYTES);
  return out;
}

interface Decoded {
  keys: Float64Array;
  digests: Buffer;
  count: number;
}

/** The records of a cache file, or undefined for anything that is not one whole file of this version. */
export function decodeCache(b: Uint8Array): Decoded | undefined {
  if (b.length < HEAD || !MAGIC.equals(b.subarray(0, 8))) return undefined;
  const head = new Uint32Array(2);
  new Uint8Array(head.buffer).set(b.subarray(8, HEAD));
  const count = head[1]!;
  if (head[0] !== VERSION || b.length !== HEAD + count * RECORD) return undefined;
  // A view where the numbers are 8-byte aligned (a whole file read into its own buffer), else a
  // copy: the copy's fresh pages cost ~50 ms of a re-stage here.
  const at = b.byteOffset + HEAD;
  let keys: Float64Array;
  if (at % 8 === 0) keys = new Float64Array(b.buffer, at, count * FIELDS);
  else {
    keys = new Float64Array(count * FIELDS);
    new Uint8Array(keys.buffer).set(b.subarray(HEAD, HEAD + count * FIELDS * 8));
  }
  const start = HEAD + count * FIELDS * 8;
  const digests = Buffer.from(b.buffer, b.byteOffset + start, count * DIGEST_BYTES);
  return { keys, digests, count };
}

/** Multiplicative hashing of (dev, ino) to `bits` bits; ino's high word is mixed in for inode numbers past 2^32. */
const slotOf = (dev: number, ino: number, bits: number): number =>
  Math.imul((ino >>> 0) ^ Math.imul(dev >>> 0, 0x85ebca6b) ^ Math.floor(ino / 0x100000000), 0x9e3779b1) >>> (32 - bits);

export class DevinoCache {
  /** The last stage's records. */
  private last: Decoded = { keys: new Float64Array(0), digests: Buffer.alloc(0), count: 0 };
  private slots = new Int32Array(1).fill(-1);
  private bits = 0;
  /** This stage's records: their numbers in the file's layout, their digests as numbers of `table`. */
  private keys = new Float64Array(FIELDS * 1024);
  private digests = new Int32Array(1024);
  private count = 0;

  /**
   * `table` is the stage's own (its files' ObjectRefs point into it): a record holds a 4-byte number
   * instead of 32 more bytes of a digest the table already has (~18 MB at 630k files, issue 13).
   */
  constructor(private readonly path: string, private readonly table = new DigestTable()) {
    if (!existsSync(path)) return;
    try {
      const got = decodeCache(readFileSync(path));
      if (got) {
        this.index(got);
        // Most of the last stage's files are this stage's too: room for them up front, instead of
        // growing (and copying) the arrays six times on the way to 60k.
        this.reserve(got.count + (got.count >> 4));
      }
    } catch {
      // An unreadable cache only costs re-hashing; never fail a stage over it.
    }
  }

  private index(d: Decoded): void {
    let bits = 1;
    while (1 << bits < 2 * d.count) bits++;
    const slots = new Int32Array(1 << bits).fill(-1);
    const mask = slots.length - 1;
    for (let i = 0; i < d.count; i++) {
      let s = slotOf(d.keys[FIELDS * i]!, d.keys[FIELDS * i + 1]!, bits);
      while (slots[s] !== -1) s = (s + 1) & mask;
      slots[s] = i;
    }
    this.last = d;
    this.slots = slots;
    this.bits = bits;
  }

  /** The last stage's record for this exact file (device, inode and stamp), or -1. */
  find(k: StatKey): number {
    if (this.last.count === 0) return -1;
    const f = this.last.keys;
    const mask = this.slots.length - 1;
    for (let s = slotOf(k.dev, k.ino, this.bits); ; s = (s + 1) & mask) {
      const i = this.slots[s]!;
      if (i === -1) return -1;
      const at = FIELDS * i;
      if (f[at] === k.dev && f[at + 1] === k.ino && f[at + 2] === k.size && f[at + 3] === k.mtimeSec && f[at + 4] === k.mtimeNsec && f[at + 5] === k.ctimeSec && f[at + 6] === k.ctimeNsec) return i;
    }
  }

  /** The digest of the last stage's record `i` (from `find`). */
  digestAt(i: number): string {
    return this.last.digests.toString("hex", DIGEST_BYTES * i, DIGEST_BYTES * (i + 1));
  }

  lookup(k: StatKey): string | undefined {
    const i = this.find(k);
    return i < 0 ? undefined : this.digestAt(i);
  }

  /** The file is unchanged since the last stage, which found it had no xattrs. */
  bare(k: StatKey): boolean {
    const i = this.find(k);
    return i >= 0 && (this.last.keys[FIELDS * i + 7]! & HAS_XATTRS) === 0;
  }

  /** The last stage's records will not be asked for again (`find`, `bare`, `keep`): let them go. */
  forgetLast(): void {
    this.last = { keys: new Float64Array(0), digests: Buffer.alloc(0), count: 0 };
    this.slots = new Int32Array(1).fill(-1);
    this.bits = 0;
  }

  /**
   * Room for `more` records beyond those held, when the caller knows how many are coming: a first
   * stage's 57k files otherwise grew the arrays by doubling, with each old copy garbage (issue 13).
   */
  expect(more: number): void {
    this.reserve(this.count + more);
  }

  private grow(): void {
    if (FIELDS * (this.count + 1) > this.keys.length) this.reserve(2 * (this.keys.length / FIELDS));
  }

  private reserve(records: number): void {
    if (FIELDS * records <= this.keys.length) return;
    const keys = new Float64Array(FIELDS * records);
    keys.set(this.keys.subarray(0, FIELDS * this.count));
    this.keys = keys;
    const digests = new Int32Array(records);
    digests.set(this.digests.subarray(0, this.count));
    this.digests = digests;
  }

  /**
   * Carries the last stage's record `i` (from `find`) into this stage's, as it is: an unchanged
   * file, whose digest need not be parsed from hex again (60k files of a re-stage). `digest` is its
   * number in the table when the caller has it already.
   */
  keep(i: number, digest = this.table.internBytes(this.last.digests, DIGEST_BYTES * i)): void {
    this.grow();
    const n = this.count++;
    for (let j = 0; j < FIELDS; j++) this.keys[FIELDS * n + j] = this.last.keys[FIELDS * i + j]!;
    this.digests[n] = digest;
  }

  /** A file read by this stage: its digest as 64 hex digits, or its number in the table. */
  remember(k: StatKey, digest: string | number, hasXattrs: boolean): void {
    let d: number;
    try {
      d = typeof digest === "number" ? this.checked(digest) : this.table.intern(digest);
    } catch (e) {
      throw new Error(`devino cache: ${(e as Error).message}`);
    }
    this.grow();
    const n = this.count++;
    const f = this.keys;
    const at = FIELDS * n;
    putStatKey(f, at, k);
    f[at + 7] = hasXattrs ? HAS_XATTRS : 0;
    this.digests[n] = d;
  }

  private checked(n: number): number {
    if (!Number.isInteger(n) || n < 0 || n >= this.table.size) throw new RangeError(`digest number ${n} is not in the table (${this.table.size})`);
    return n;
  }

  /** Keeps only the files of the latest stage, so the cache does not grow without bound. */
  save(): void {
    this.forgetLast();
    const digests = this.digests;
    writeFileAtomic(this.path, encodeCache(this.keys, this.count, (n, out, at) => this.table.copyBytes(digests[n]!, out, at)));
    const old = join(dirname(this.path), OLD_FILE);
    if (old === this.path) return;
    try {
      unlinkSync(old);
    } catch {
      // Not there: the usual case.
    }
  }
}
