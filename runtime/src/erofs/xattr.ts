// Xattr encoding: short name-prefix indexes, inline bodies and the shared xattr table.
// Long name prefixes (INCOMPAT_XATTR_PREFIXES) are deliberately not used: erofs-utils 1.5 and
// kernels before 6.4 reject images that carry them.
import type { Xattr } from "../tree/model.ts";
import { BLOCK_SIZE, XATTR_ENTRY_HEADER_SIZE, XATTR_IBODY_HEADER_SIZE, alignUp } from "./format.ts";

// Full-name matches first: the ACL names are whole names with an empty suffix.
const PREFIXES: ReadonlyArray<[Buffer, number, boolean]> = [
  [Buffer.from("system.posix_acl_access"), 2, true],
  [Buffer.from("system.posix_acl_default"), 3, true],
  [Buffer.from("user."), 1, false],
  [Buffer.from("trusted."), 4, false],
  [Buffer.from("security."), 6, false],
];

/** One xattr as an on-disk entry (header, name suffix, value), padded to 4 bytes. */
export function encodeXattrEntry(x: Xattr): Buffer {
  for (const [prefix, index, whole] of PREFIXES) {
    const match = whole
      ? x.name.equals(prefix)
      : x.name.length > prefix.length && x.name.subarray(0, prefix.length).equals(prefix);
    if (!match) continue;
    const suffixLen = x.name.length - prefix.length;
    if (suffixLen > 255) throw new Error(`xattr name too long: ${x.name.toString()}`);
    if (x.value.length > 0xffff) throw new Error(`xattr value too large (${x.value.length} bytes): ${x.name.toString()}`);
    const raw = XATTR_ENTRY_HEADER_SIZE + suffixLen + x.value.length;
    const b = Buffer.alloc(alignUp(raw, 4));
    b[0] = suffixLen;
    b[1] = index;
    b.writeUInt16LE(x.value.length, 2);
    x.name.copy(b, 4, prefix.length);
    x.value.copy(b, 4 + suffixLen);
    return b;
  }
  throw new Error(`xattr namespace not representable in EROFS: ${x.name.toString()}`);
}

export interface InodeXattrs {
  /** Entries in name order; each either shared (by key) or inline. */
  entries: Buffer[];
  keys: string[];
}

export function prepareXattrs(xattrs: readonly Xattr[]): InodeXattrs {
  const sorted = [...xattrs].sort((a, b) => Buffer.compare(a.name, b.name));
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i]!.name.equals(sorted[i - 1]!.name)) throw new Error(`duplicate xattr ${sorted[i]!.name.toString()}`);
  const entries = sorted.map(encodeXattrEntry);
  return { entries, keys: entries.map((e) => e.toString("latin1")) };
}

/** The h_shared_count field is a u8. */
const MAX_SHARED_PER_INODE = 255;

/**
 * Xattrs (name and value) repeated across inodes are stored once and referenced by a 4-byte id, when
 * that is smaller than repeating them inline (SELinux labels, capabilities on many binaries).
 */
export class SharedXattrTable {
  private counts = new Map<string, { bytes: Buffer; count: number }>();
  private ids = new Map<string, number>();
  /** The area image, starting at a block boundary (xattr_blkaddr). */
  area: Buffer = Buffer.alloc(0);

  count(x: InodeXattrs): void {
    for (let i = 0; i < x.keys.length; i++) {
      const k = x.keys[i]!;
      const c = this.counts.get(k);
      if (c) c.count++;
      else this.counts.set(k, { bytes: x.entries[i]!, count: 1 });
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
  split(x: InodeXattrs): { shared: number[]; inline: Buffer[] } {
    const shared: number[] = [];
    const inline: Buffer[] = [];
    for (let i = 0; i < x.keys.length; i++) {
      const id = this.ids.get(x.keys[i]!);
      if (id !== undefined && shared.length < MAX_SHARED_PER_INODE) shared.push(id);
      else inline.push(x.entries[i]!);
    }
    return { shared, inline };
  }
}

/** Size of the xattr body that follows the inode (0 without xattrs). */
export function ibodySize(shared: number, inline: readonly Buffer[]): number {
  if (shared === 0 && inline.length === 0) return 0;
  let n = XATTR_IBODY_HEADER_SIZE + 4 * shared;
  for (const e of inline) n += e.length;
  return n;
}

export function writeIbody(buf: Buffer, off: number, shared: readonly number[], inline: readonly Buffer[]): void {
  // h_name_filter stays 0: the filter is only consulted when COMPAT_XATTR_FILTER is set.
  buf[off + 4] = shared.length;
  let p = off + XATTR_IBODY_HEADER_SIZE;
  for (const id of shared) {
    buf.writeUInt32LE(id, p);
    p += 4;
  }
  for (const e of inline) {
    e.copy(buf, p);
    p += e.length;
  }
}

export const xattrICount = (ibody: number): number => (ibody === 0 ? 0 : (ibody - XATTR_IBODY_HEADER_SIZE) / 4 + 1);
