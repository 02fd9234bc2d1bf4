// Xattr encoding: short name-prefix indexes, inline bodies and the shared xattr table.
// Long name prefixes (INCOMPAT_XATTR_PREFIXES) are deliberately not used: erofs-utils 1.5 and
// kernels before 6.4 reject images that carry them.
// Entries are written straight into the image buffer from the inode's own list, and nothing is
// kept per entry but its 32-bit hash: a composefs tree has two unique xattrs per file, and an
// object per entry was ~12 MB at a 60k-file stage's memory peak (issue 13).
import type { Xattr } from "../tree/model.ts";
import { putBytes } from "./bytes.ts";
import { BLOCK_SIZE, XATTR_ENTRY_HEADER_SIZE, XATTR_IBODY_HEADER_SIZE, alignUp } from "./format.ts";

// Full-name matches first: the ACL names are whole names with an empty suffix.
const PREFIXES: ReadonlyArray<[Buffer, number, boolean]> = [
  [Buffer.from("system.posix_acl_access"), 2, true],
  [Buffer.from("system.posix_acl_default"), 3, true],
  [Buffer.from("user."), 1, false],
  [Buffer.from("trusted."), 4, false],
  [Buffer.from("security."), 6, false],
];

/** Which of PREFIXES the name starts with (-1: none); a number, so that nothing is allocated per entry. */
function prefixOf(name: Buffer): number {
  for (let k = 0; k < PREFIXES.length; k++) {
    const [prefix, , whole] = PREFIXES[k]!;
    const plen = prefix.length;
    if ((whole ? name.length === plen : name.length > plen) && hasPrefix(name, prefix)) return k;
  }
  return -1;
}

const prefixLen = (k: number): number => PREFIXES[k]![0].length;

function fnv1a(h: number, b: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h;
}

/**
 * FNV-1a of the name, the value's length and at most the value's first and last 32 bytes: a cheap
 * first filter so that unique values (redirects, digests) never become map keys; a collision only
 * costs a map lookup.
 */
function entryHash(x: Xattr): number {
  const v = x.value;
  let h = fnv1a(0x811c9dc5, x.name, 0, x.name.length);
  h = Math.imul(h ^ v.length, 0x01000193);
  if (v.length <= 64) return fnv1a(h, v, 0, v.length) | 0;
  return fnv1a(fnv1a(h, v, 0, 32), v, v.length - 32, v.length) | 0;
}

function hasPrefix(name: Buffer, prefix: Buffer): boolean {
  for (let i = 0; i < prefix.length; i++) if (name[i] !== prefix[i]) return false;
  return true;
}

/** Throws unless the xattr can be stored: a known namespace, a name suffix of at most 255 bytes, a value of at most 64 KiB. */
function checkXattr(x: Xattr): void {
  const k = prefixOf(x.name);
  if (k < 0) throw new Error(`xattr namespace not representable in EROFS: ${x.name.toString()}`);
  if (x.name.length - prefixLen(k) > 255) throw new Error(`xattr name too long: ${x.name.toString()}`);
  if (x.value.length > 0xffff) throw new Error(`xattr value too large (${x.value.length} bytes): ${x.name.toString()}`);
}

/** On-disk size of the entry, padded to 4 bytes. */
export function entrySize(x: Xattr): number {
  return alignUp(XATTR_ENTRY_HEADER_SIZE + x.name.length - prefixLen(prefixOf(x.name)) + x.value.length, 4);
}

/** Writes the entry (header, name suffix, value); padding is left as the buffer's zeros. */
export function writeXattrEntry(buf: Buffer, off: number, x: Xattr): void {
  const k = prefixOf(x.name);
  const plen = prefixLen(k);
  const suffixLen = x.name.length - plen;
  buf[off] = suffixLen;
  buf[off + 1] = PREFIXES[k]![1];
  buf[off + 2] = x.value.length & 0xff;
  buf[off + 3] = x.value.length >>> 8;
  putBytes(buf, off + 4, x.name, plen);
  putBytes(buf, off + 4 + suffixLen, x.value);
}

/** One xattr as an on-disk entry, padded to 4 bytes. */
export function encodeXattrEntry(x: Xattr): Buffer {
  checkXattr(x);
  const b = Buffer.alloc(entrySize(x));
  writeXattrEntry(b, 0, x);
  return b;
}

const byName = (a: Xattr, b: Xattr) => Buffer.compare(a.name, b.name);

/** The list in name order: itself when it is already (the model keeps lists sorted), else a sorted copy. */
export function sortedXattrs(xattrs: readonly Xattr[]): readonly Xattr[] {
  for (let i = 1; i < xattrs.length; i++) if (byName(xattrs[i - 1]!, xattrs[i]!) >= 0) return [...xattrs].sort(byName);
  return xattrs;
}

/** Throws on a duplicate name or an xattr EROFS cannot store; `xattrs` in name order. */
export function checkXattrs(xattrs: readonly Xattr[]): void {
  for (let i = 0; i < xattrs.length; i++) {
    checkXattr(xattrs[i]!);
    if (i > 0 && xattrs[i]!.name.equals(xattrs[i - 1]!.name)) throw new Error(`duplicate xattr ${xattrs[i]!.name.toString()}`);
  }
}

const NONE: number[] = [];

/** The h_shared_count field is a u8. */
const MAX_SHARED_PER_INODE = 255;

/** Room for the largest entry: header, a 255-byte name suffix, a 64 KiB value, padding. */
const MAX_ENTRY = alignUp(XATTR_ENTRY_HEADER_SIZE + 255 + 0xffff, 4);

/** Writes the entry to `buf` at 0 with its padding zeroed (the buffer is reused); returns its size. */
function encodeInto(buf: Buffer, x: Xattr): number {
  const size = entrySize(x);
  buf.fill(0, 0, size);
  writeXattrEntry(buf, 0, x);
  return size;
}

/**
 * How often each 32-bit entry hash was seen, saturating at 2: open addressing over typed arrays. A
 * Map of 121k numbers (two xattrs per file of a 60k-file composefs tree) cost ~10 MB with its
 * rehashing garbage, at the image phase's memory peak (issue 13); this costs ~1.3 MB.
 */
class HashCounts {
  private keys = new Int32Array(1 << 12);
  private counts = new Uint8Array(1 << 12);
  private used = 0;

  private slot(h: number): number {
    const mask = this.keys.length - 1;
    let i = Math.imul(h, 0x9e3779b1) >>> 0 & mask;
    while (this.counts[i] !== 0 && this.keys[i] !== h) i = (i + 1) & mask;
    return i;
  }

  add(h: number): void {
    let i = this.slot(h);
    if (this.counts[i] === 0) {
      if (2 * (this.used + 1) > this.keys.length) {
        this.grow();
        i = this.slot(h);
      }
      this.keys[i] = h;
      this.used++;
    }
    if (this.counts[i]! < 2) this.counts[i]!++;
  }

  /** Seen at least twice. */
  repeated(h: number): boolean {
    return this.counts[this.slot(h)] === 2;
  }

  private grow(): void {
    const { keys, counts } = this;
    this.keys = new Int32Array(keys.length * 2);
    this.counts = new Uint8Array(keys.length * 2);
    for (let i = 0; i < keys.length; i++) {
      if (counts[i] === 0) continue;
      const j = this.slot(keys[i]!);
      this.keys[j] = keys[i]!;
      this.counts[j] = counts[i]!;
    }
  }
}

const grownInt32 = (a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> => {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
};

/**
 * Distinct encoded entries, their bytes end to end in one buffer, each with how often it was
 * counted. Looking an entry up makes no string and no Buffer: a Map keyed on each entry's bytes as
 * a latin1 string (a string and a Buffer per distinct entry, and both again per lookup) was a large
 * part of the image phase's peak where files repeat (the 630k-file tree: every object ten times).
 */
class EntrySet {
  size = 0;
  private bytes = Buffer.alloc(1 << 16);
  private used = 0;
  private start = new Int32Array(1 << 10);
  private len = new Int32Array(1 << 10);
  private hashOf = new Int32Array(1 << 10);
  private counts = new Int32Array(1 << 10);
  /** Open addressing on the full-entry hash: entry number + 1, or 0. */
  private slots = new Int32Array(1 << 11);

  length(k: number): number {
    return this.len[k]!;
  }

  count(k: number): number {
    return this.counts[k]!;
  }

  /** Counts the entry in `src[0, n)` once more (adding it if it is new); returns its number. */
  add(src: Buffer, n: number): number {
    const h = fnv1a(0x811c9dc5, src, 0, n) | 0;
    let i = this.slot(h, src, n);
    const s = this.slots[i]!;
    if (s !== 0) {
      this.counts[s - 1]!++;
      return s - 1;
    }
    if (2 * (this.size + 1) > this.slots.length) {
      this.rehash(this.slots.length * 2);
      i = this.slot(h, src, n);
    }
    const k = this.size++;
    this.start = grownInt32(this.start, this.size);
    this.len = grownInt32(this.len, this.size);
    this.hashOf = grownInt32(this.hashOf, this.size);
    this.counts = grownInt32(this.counts, this.size);
    if (this.used + n > this.bytes.length) {
      const b = Buffer.alloc(Math.max(this.used + n, this.bytes.length * 2));
      this.bytes.copy(b, 0, 0, this.used);
      this.bytes = b;
    }
    src.copy(this.bytes, this.used, 0, n);
    this.start[k] = this.used;
    this.len[k] = n;
    this.hashOf[k] = h;
    this.counts[k] = 1;
    this.used += n;
    this.slots[i] = k + 1;
    return k;
  }

  /** Byte order, shorter first on a common prefix: Buffer.compare's order. */
  compare(a: number, b: number): number {
    const bytes = this.bytes;
    const la = this.len[a]!, lb = this.len[b]!;
    const pa = this.start[a]!, pb = this.start[b]!;
    const n = Math.min(la, lb);
    for (let i = 0; i < n; i++) {
      const d = bytes[pa + i]! - bytes[pb + i]!;
      if (d !== 0) return d;
    }
    return la - lb;
  }

  copyTo(k: number, out: Buffer, at: number): void {
    this.bytes.copy(out, at, this.start[k]!, this.start[k]! + this.len[k]!);
  }

  private slot(h: number, src: Buffer, n: number): number {
    const mask = this.slots.length - 1;
    let i = Math.imul(h, 0x9e3779b1) >>> 0 & mask;
    for (;;) {
      const s = this.slots[i]!;
      if (s === 0) return i;
      const k = s - 1;
      if (this.hashOf[k] === h && this.len[k] === n && this.equals(k, src, n)) return i;
      i = (i + 1) & mask;
    }
  }

  private equals(k: number, src: Buffer, n: number): boolean {
    const bytes = this.bytes;
    const p = this.start[k]!;
    for (let i = 0; i < n; i++) if (bytes[p + i] !== src[i]) return false;
    return true;
  }

  private rehash(size: number): void {
    this.slots = new Int32Array(size);
    const mask = size - 1;
    for (let k = 0; k < this.size; k++) {
      let i = Math.imul(this.hashOf[k]!, 0x9e3779b1) >>> 0 & mask;
      while (this.slots[i] !== 0) i = (i + 1) & mask;
      this.slots[i] = k + 1;
    }
  }
}

/**
 * Xattrs (name and value) repeated across inodes are stored once and referenced by a 4-byte id, when
 * that is smaller than repeating them inline (SELinux labels, capabilities on many binaries, and a
 * composefs redirect and metacopy on every copy of the same file).
 * Use: hash() every inode, then count() the inodes whose entries repeats() (the others cannot be
 * shared), seal(), then split() any inode, as often as needed. Per entry, only numbers are kept:
 * its hash, and which distinct entry it is; the inodes' lists are asked for again instead.
 */
export class SharedXattrTable {
  private hashCounts = new HashCounts();
  /** Every entry's hash in the order hash() saw them: count() and split() need them again, and the lists are not kept. */
  private hashes = new Int32Array(1 << 12);
  private nHashes = 0;
  /** Per hashed entry: its number in `entries` once count() saw it, else -1. */
  private entryOf = new Int32Array(0);
  private entries: EntrySet | undefined = new EntrySet();
  /** Per distinct entry after seal(): its id in the area (offset / 4), or -1 where it stays inline. */
  private idOf = new Int32Array(0);
  private scratch: Buffer | undefined;
  /** The area image, starting at a block boundary (xattr_blkaddr). */
  area: Buffer = Buffer.alloc(0);

  /** Counts an inode's entries; returns where their hashes start, for repeats(), count() and split(). */
  hash(xs: readonly Xattr[]): number {
    const at = this.nHashes;
    this.hashes = grownInt32(this.hashes, at + xs.length);
    for (const x of xs) {
      const h = entryHash(x);
      this.hashes[this.nHashes++] = h;
      this.hashCounts.add(h);
    }
    return at;
  }

  /** Whether any of the inode's entries (hashed at `at`) may be stored more than once: only those inodes need count(). */
  repeats(at: number, n: number): boolean {
    for (let i = at; i < at + n; i++) if (this.hashCounts.repeated(this.hashes[i]!)) return true;
    return false;
  }

  count(xs: readonly Xattr[], at: number): void {
    const entries = this.entries;
    if (!entries) throw new Error("SharedXattrTable: count() after seal()");
    if (this.entryOf.length < this.nHashes) {
      const grown = new Int32Array(this.nHashes).fill(-1);
      grown.set(this.entryOf);
      this.entryOf = grown;
    }
    const scratch = (this.scratch ??= Buffer.alloc(MAX_ENTRY));
    for (let i = 0; i < xs.length; i++) {
      if (!this.hashCounts.repeated(this.hashes[at + i]!)) continue;
      this.entryOf[at + i] = entries.add(scratch, encodeInto(scratch, xs[i]!));
    }
  }

  /** Chooses the shared entries and lays them out; deterministic (sorted by entry bytes). */
  seal(): void {
    const entries = this.entries;
    if (!entries) return;
    const chosen: number[] = [];
    for (let k = 0; k < entries.size; k++) {
      const c = entries.count(k);
      const b = entries.length(k);
      if (c >= 2 && b * c > b + 4 * c) chosen.push(k);
    }
    chosen.sort((a, b) => entries.compare(a, b));
    const idOf = new Int32Array(entries.size).fill(-1);
    let off = 0;
    for (const k of chosen) {
      // Entries never straddle a block: readers map one block at a time.
      const len = entries.length(k);
      const room = BLOCK_SIZE - (off % BLOCK_SIZE);
      if (len > room && len <= BLOCK_SIZE) off += room;
      idOf[k] = off / 4;
      off += len;
    }
    const area = Buffer.alloc(off);
    for (const k of chosen) entries.copyTo(k, area, idOf[k]! * 4);
    this.area = area;
    this.idOf = idOf;
    this.entries = undefined;
    this.scratch = undefined;
  }

  /** Splits an inode's entries (hashed at `at`) into shared ids and inline entries. */
  split(xs: readonly Xattr[], at: number): { shared: number[]; inline: readonly Xattr[] } {
    if (this.area.length === 0) return { shared: NONE, inline: xs };
    let shared = NONE;
    let inline: Xattr[] | undefined;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!;
      const k = at + i < this.entryOf.length ? this.entryOf[at + i]! : -1;
      const id = k >= 0 ? this.idOf[k]! : -1;
      if (id >= 0 && shared.length < MAX_SHARED_PER_INODE) {
        if (shared === NONE) {
          shared = [];
          inline = xs.slice(0, i);
        }
        shared.push(id);
      } else inline?.push(x);
    }
    return { shared, inline: inline ?? xs };
  }
}

/** Size of the xattr body that follows the inode (0 without xattrs). */
export function ibodySize(shared: number, inline: readonly Xattr[]): number {
  if (shared === 0 && inline.length === 0) return 0;
  let n = XATTR_IBODY_HEADER_SIZE + 4 * shared;
  for (const x of inline) n += entrySize(x);
  return n;
}

export function writeIbody(buf: Buffer, off: number, shared: readonly number[], inline: readonly Xattr[]): void {
  // Without xattrs there is no body: whatever follows the inode (maybe another inode) is not ours.
  if (shared.length === 0 && inline.length === 0) return;
  // h_name_filter stays 0: the filter is only consulted when COMPAT_XATTR_FILTER is set.
  buf[off + 4] = shared.length;
  let p = off + XATTR_IBODY_HEADER_SIZE;
  for (const id of shared) {
    buf[p] = id & 0xff;
    buf[p + 1] = (id >>> 8) & 0xff;
    buf[p + 2] = (id >>> 16) & 0xff;
    buf[p + 3] = id >>> 24;
    p += 4;
  }
  for (const x of inline) {
    writeXattrEntry(buf, p, x);
    p += entrySize(x);
  }
}

export const xattrICount = (ibody: number): number => (ibody === 0 ? 0 : (ibody - XATTR_IBODY_HEADER_SIZE) / 4 + 1);
