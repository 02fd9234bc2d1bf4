// Xattr encoding: short name-prefix indexes, inline bodies and the shared xattr table.
// Long name prefixes (INCOMPAT_XATTR_PREFIXES) are deliberately not used: erofs-utils 1.5 and
// kernels before 6.4 reject images that carry them.
// Entries are written straight into the image buffer: a composefs tree has two unique xattrs per
// file, and allocating each entry first costed more than everything else together.
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

export interface XattrEntry {
  x: Xattr;
  index: number;
  prefixLen: number;
  /** On-disk size, padded to 4 bytes. */
  size: number;
  /** FNV-1a of name and value: a cheap first filter so unique values (redirects, digests) never become map keys. */
  hash: number;
}

function fnv1a(h: number, b: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h;
}

/** Hashes the name, the value's length and at most its first and last 32 bytes: collisions only cost a map lookup. */
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

export function xattrEntry(x: Xattr): XattrEntry {
  const name = x.name;
  for (const [prefix, index, whole] of PREFIXES) {
    const plen = prefix.length;
    const match = (whole ? name.length === plen : name.length > plen) && hasPrefix(name, prefix);
    if (!match) continue;
    const suffixLen = name.length - plen;
    if (suffixLen > 255) throw new Error(`xattr name too long: ${name.toString()}`);
    if (x.value.length > 0xffff) throw new Error(`xattr value too large (${x.value.length} bytes): ${name.toString()}`);
    const size = alignUp(XATTR_ENTRY_HEADER_SIZE + suffixLen + x.value.length, 4);
    return { x, index, prefixLen: plen, size, hash: entryHash(x) };
  }
  throw new Error(`xattr namespace not representable in EROFS: ${name.toString()}`);
}

/** Writes the entry (header, name suffix, value); padding is left as the buffer's zeros. */
export function writeXattrEntry(buf: Buffer, off: number, e: XattrEntry): void {
  const suffixLen = e.x.name.length - e.prefixLen;
  buf[off] = suffixLen;
  buf[off + 1] = e.index;
  buf[off + 2] = e.x.value.length & 0xff;
  buf[off + 3] = e.x.value.length >>> 8;
  putBytes(buf, off + 4, e.x.name, e.prefixLen);
  putBytes(buf, off + 4 + suffixLen, e.x.value);
}

/** One xattr as an on-disk entry, padded to 4 bytes. */
export function encodeXattrEntry(x: Xattr): Buffer {
  const e = xattrEntry(x);
  const b = Buffer.alloc(e.size);
  writeXattrEntry(b, 0, e);
  return b;
}

const byName = (a: Xattr, b: Xattr) => Buffer.compare(a.name, b.name);

/** An inode's xattrs as entries in name order. */
export function prepareXattrs(xattrs: readonly Xattr[]): XattrEntry[] {
  if (xattrs.length === 0) return [];
  let sorted = xattrs;
  for (let i = 1; i < xattrs.length; i++) {
    if (byName(xattrs[i - 1]!, xattrs[i]!) >= 0) {
      sorted = [...xattrs].sort(byName);
      break;
    }
  }
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i]!.name.equals(sorted[i - 1]!.name)) throw new Error(`duplicate xattr ${sorted[i]!.name.toString()}`);
  return sorted.map(xattrEntry);
}

const NONE: number[] = [];

/** The h_shared_count field is a u8. */
const MAX_SHARED_PER_INODE = 255;

const entryKey = (e: XattrEntry): string => encodeXattrEntry(e.x).toString("latin1");

/**
 * Xattrs (name and value) repeated across inodes are stored once and referenced by a 4-byte id, when
 * that is smaller than repeating them inline (SELinux labels, capabilities on many binaries).
 * Use: hash() every inode, then count() every inode, seal(), then split() each inode.
 */
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

export class SharedXattrTable {
  private hashCounts = new HashCounts();
  private counts = new Map<string, { bytes: Buffer; count: number }>();
  private ids = new Map<string, number>();
  /** The area image, starting at a block boundary (xattr_blkaddr). */
  area: Buffer = Buffer.alloc(0);

  hash(xs: readonly XattrEntry[]): void {
    for (const e of xs) this.hashCounts.add(e.hash);
  }

  private repeated(e: XattrEntry): boolean {
    return this.hashCounts.repeated(e.hash);
  }

  count(xs: readonly XattrEntry[]): void {
    for (const e of xs) {
      if (!this.repeated(e)) continue;
      const k = entryKey(e);
      const c = this.counts.get(k);
      if (c) c.count++;
      else this.counts.set(k, { bytes: Buffer.from(k, "latin1"), count: 1 });
    }
  }

  /** Chooses the shared entries and lays them out; deterministic (sorted by entry bytes). */
  seal(): void {
    const chosen = [...this.counts.values()]
      .filter((c) => c.count >= 2 && c.bytes.length * c.count > c.bytes.length + 4 * c.count)
      .sort((a, b) => Buffer.compare(a.bytes, b.bytes));
    const parts: Buffer[] = [];
    let off = 0;
    for (const c of chosen) {
      // Entries never straddle a block: readers map one block at a time.
      const room = BLOCK_SIZE - (off % BLOCK_SIZE);
      if (c.bytes.length > room && c.bytes.length <= BLOCK_SIZE) {
        parts.push(Buffer.alloc(room));
        off += room;
      }
      this.ids.set(c.bytes.toString("latin1"), off / 4);
      parts.push(c.bytes);
      off += c.bytes.length;
    }
    this.area = Buffer.concat(parts, off);
    this.counts.clear();
  }

  /** Splits an inode's xattrs into shared ids and inline entries. */
  split(xs: XattrEntry[]): { shared: number[]; inline: XattrEntry[] } {
    if (this.ids.size === 0) return { shared: NONE, inline: xs };
    // Most inodes share nothing (a composefs file's redirect is unique to its content): they keep
    // their list, and no arrays are made for them.
    let shared = NONE;
    let inline: XattrEntry[] | undefined;
    for (let i = 0; i < xs.length; i++) {
      const e = xs[i]!;
      const id = this.repeated(e) ? this.ids.get(entryKey(e)) : undefined;
      if (id !== undefined && shared.length < MAX_SHARED_PER_INODE) {
        if (shared === NONE) {
          shared = [];
          inline = xs.slice(0, i);
        }
        shared.push(id);
      } else inline?.push(e);
    }
    return { shared, inline: inline ?? xs };
  }
}

/** Size of the xattr body that follows the inode (0 without xattrs). */
export function ibodySize(shared: number, inline: readonly XattrEntry[]): number {
  if (shared === 0 && inline.length === 0) return 0;
  let n = XATTR_IBODY_HEADER_SIZE + 4 * shared;
  for (const e of inline) n += e.size;
  return n;
}

export function writeIbody(buf: Buffer, off: number, shared: readonly number[], inline: readonly XattrEntry[]): void {
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
  for (const e of inline) {
    writeXattrEntry(buf, p, e);
    p += e.size;
  }
}

export const xattrICount = (ibody: number): number => (ibody === 0 ? 0 : (ibody - XATTR_IBODY_HEADER_SIZE) / 4 + 1);
