// A small EROFS reader for the formats this writer produces (uncompressed: flat, inline, chunk
// maps). It lets unit tests check images without root or a kernel, and lets tools inspect an image.
import {
  BLOCK_BITS,
  BLOCK_SIZE,
  DIRENT_SIZE,
  INODE_SLOT,
  LAYOUT_CHUNK_BASED,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  MAGIC,
  NULL_ADDR,
  S_IFMT,
  MODE_TYPE,
  SUPER_OFFSET,
  SUPER_SIZE,
  XATTR_IBODY_HEADER_SIZE,
} from "./format.ts";
import type { InodeFields } from "./inode.ts";
import type { SuperFields } from "./superblock.ts";

/** The superblock as read back: what the writer sets, plus what it always leaves fixed. */
export interface SuperInfo extends SuperFields {
  blkszbits: number;
  uuid: Buffer;
  featureCompat: number;
}

/** An inode as read back: the writer's fields plus where it sits. */
export interface RawInode extends InodeFields {
  nid: number;
  /** Byte offset of the inode in the image. */
  offset: number;
  /** Size of inode + xattr body. */
  headerSize: number;
}

export interface RawDirent {
  name: Buffer;
  nid: number;
  type: number;
}

const PREFIX_NAMES: Record<number, string> = {
  1: "user.",
  2: "system.posix_acl_access",
  3: "system.posix_acl_default",
  4: "trusted.",
  6: "security.",
};

/** data() holds a file in memory; a size field above this is refused rather than allocated. */
export const MAX_DATA = 256 << 20;

/**
 * Every offset is checked against the image before it is read, so a damaged or hostile image gives
 * an Error naming the image and the inode, never a RangeError from a Buffer read or a huge allocation.
 */
export class ErofsImage {
  readonly sb: SuperInfo;
  constructor(readonly img: Buffer, readonly name = "EROFS image") {
    const o = SUPER_OFFSET;
    if (img.length < o + SUPER_SIZE) throw new Error(`${name}: ${img.length} bytes, too short for an EROFS superblock`);
    if (img.readUInt32LE(o) !== MAGIC) throw new Error(`${name}: not an EROFS image (no magic number at byte ${o})`);
    if (img[o + 12] !== BLOCK_BITS) throw new Error(`${name}: block size 2^${img[o + 12]} is not supported (only ${BLOCK_SIZE})`);
    this.sb = {
      featureCompat: img.readUInt32LE(o + 8),
      blkszbits: img[o + 12]!,
      rootNid: img.readUInt16LE(o + 14),
      inos: Number(img.readBigUInt64LE(o + 16)),
      buildTimeSec: Number(img.readBigInt64LE(o + 24)),
      buildTimeNsec: img.readUInt32LE(o + 32),
      blocks: img.readUInt32LE(o + 36),
      metaBlkaddr: img.readUInt32LE(o + 40),
      xattrBlkaddr: img.readUInt32LE(o + 44),
      uuid: img.subarray(o + 48, o + 64),
      featureIncompat: img.readUInt32LE(o + 80),
    };
  }

  /** Throws unless [off, off + len) lies inside the image. */
  private need(off: number, len: number, what: string): void {
    if (!(off >= 0 && len >= 0 && off + len <= this.img.length)) {
      throw new Error(`${this.name}: ${what}: bytes ${off}..${off + len} are beyond the end of the image (${this.img.length} bytes)`);
    }
  }

  inode(nid: number): RawInode {
    const off = this.sb.metaBlkaddr * BLOCK_SIZE + nid * INODE_SLOT;
    const b = this.img;
    this.need(off, 32, `inode ${nid}`);
    const format = b.readUInt16LE(off);
    const extended = (format & 1) === 1;
    if (extended) this.need(off, 64, `inode ${nid}`);
    const xattrICount = b.readUInt16LE(off + 2);
    const common = { nid, extended, layout: (format >> 1) & 7, mode: b.readUInt16LE(off + 4), offset: off, xattrICount };
    const ibody = xattrICount === 0 ? 0 : XATTR_IBODY_HEADER_SIZE + 4 * (xattrICount - 1);
    if (extended)
      return {
        ...common,
        size: Number(b.readBigUInt64LE(off + 8)),
        iu: b.readUInt32LE(off + 16),
        ino: b.readUInt32LE(off + 20),
        uid: b.readUInt32LE(off + 24),
        gid: b.readUInt32LE(off + 28),
        mtimeSec: Number(b.readBigInt64LE(off + 32)),
        mtimeNsec: b.readUInt32LE(off + 40),
        nlink: b.readUInt32LE(off + 44),
        headerSize: 64 + ibody,
      };
    return {
      ...common,
      nlink: b.readUInt16LE(off + 6),
      size: b.readUInt32LE(off + 8),
      iu: b.readUInt32LE(off + 16),
      ino: b.readUInt32LE(off + 20),
      uid: b.readUInt16LE(off + 24),
      gid: b.readUInt16LE(off + 26),
      mtimeSec: this.sb.buildTimeSec,
      mtimeNsec: this.sb.buildTimeNsec,
      headerSize: 32 + ibody,
    };
  }

  /** Xattrs in on-disk order (shared first), full names. */
  xattrs(ino: RawInode): { name: Buffer; value: Buffer; shared: boolean }[] {
    if (ino.xattrICount === 0) return [];
    const b = this.img;
    const what = `inode ${ino.nid}: xattrs`;
    const start = ino.offset + (ino.extended ? 64 : 32);
    const end = ino.offset + ino.headerSize;
    this.need(start, end - start, what);
    const sharedCount = b[start + 4]!;
    if (start + XATTR_IBODY_HEADER_SIZE + 4 * sharedCount > end) throw new Error(`${this.name}: ${what}: ${sharedCount} shared xattrs do not fit the xattr body`);
    const out: { name: Buffer; value: Buffer; shared: boolean }[] = [];
    const entry = (p: number, shared: boolean, limit: number): number => {
      this.need(p, 4, what);
      const nameLen = b[p]!;
      const index = b[p + 1]!;
      const valueLen = b.readUInt16LE(p + 2);
      if (p + 4 + nameLen + valueLen > limit) throw new Error(`${this.name}: ${what}: an entry at byte ${p} runs past its area`);
      const prefix = PREFIX_NAMES[index];
      if (prefix === undefined) throw new Error(`${this.name}: ${what}: unknown xattr name index ${index}`);
      const name = Buffer.concat([Buffer.from(prefix), b.subarray(p + 4, p + 4 + nameLen)]);
      out.push({ name, value: Buffer.from(b.subarray(p + 4 + nameLen, p + 4 + nameLen + valueLen)), shared });
      return Math.ceil((4 + nameLen + valueLen) / 4) * 4;
    };
    let p = start + XATTR_IBODY_HEADER_SIZE;
    for (let i = 0; i < sharedCount; i++, p += 4) entry(this.sb.xattrBlkaddr * BLOCK_SIZE + 4 * b.readUInt32LE(p), true, b.length);
    while (p < end) p += entry(p, false, end);
    return out;
  }

  /** The inode's data bytes (holes read as zeros). Only for images that fit in memory. */
  data(ino: RawInode): Buffer {
    const what = `inode ${ino.nid}: data`;
    if (!Number.isSafeInteger(ino.size) || ino.size > MAX_DATA) throw new Error(`${this.name}: ${what}: size ${ino.size} is more than this reader holds in memory (${MAX_DATA})`);
    const tailAt = ino.offset + ino.headerSize;
    if (ino.layout === LAYOUT_CHUNK_BASED) {
      const chunk = BLOCK_SIZE * 2 ** (ino.iu & 0x1f);
      const count = Math.ceil(ino.size / chunk);
      this.need(tailAt, 4 * count, `${what}: chunk map`);
      const out = Buffer.alloc(ino.size);
      for (let i = 0; i < count; i++) {
        const addr = this.img.readUInt32LE(tailAt + 4 * i);
        if (addr === NULL_ADDR) continue;
        const len = Math.min(chunk, ino.size - i * chunk);
        this.need(addr * BLOCK_SIZE, len, `${what}: chunk ${i}`);
        this.img.copy(out, i * chunk, addr * BLOCK_SIZE, addr * BLOCK_SIZE + len);
      }
      return out;
    }
    const inline = ino.layout === LAYOUT_FLAT_INLINE;
    if (!inline && ino.layout !== LAYOUT_FLAT_PLAIN) throw new Error(`${this.name}: ${what}: unsupported layout ${ino.layout}`);
    const full = inline ? Math.floor(ino.size / BLOCK_SIZE) * BLOCK_SIZE : ino.size;
    this.need(ino.iu * BLOCK_SIZE, full, `${what}: blocks`);
    if (inline) this.need(tailAt, ino.size - full, `${what}: inline tail`);
    const out = Buffer.alloc(ino.size);
    this.img.copy(out, 0, ino.iu * BLOCK_SIZE, ino.iu * BLOCK_SIZE + full);
    if (inline) this.img.copy(out, full, tailAt, tailAt + (ino.size - full));
    return out;
  }

  /** Directory entries block by block, "." and ".." included. */
  dirBlocks(ino: RawInode): RawDirent[][] {
    const what = `inode ${ino.nid}: directory`;
    if ((ino.mode & S_IFMT) !== MODE_TYPE.dir) throw new Error(`${this.name}: ${what}: not a directory (mode ${ino.mode.toString(8)})`);
    const data = this.data(ino);
    const blocks: RawDirent[][] = [];
    for (let off = 0; off < data.length; off += BLOCK_SIZE) {
      const blk = data.subarray(off, Math.min(off + BLOCK_SIZE, data.length));
      // The first dirent's nameoff is where the names start, so it also counts the dirents.
      const first = blk.length >= DIRENT_SIZE ? blk.readUInt16LE(8) : 0;
      if (first < DIRENT_SIZE || first % DIRENT_SIZE !== 0 || first > blk.length) throw new Error(`${this.name}: ${what}: block ${off / BLOCK_SIZE} has a bad first name offset ${first}`);
      const count = first / DIRENT_SIZE;
      const ents: RawDirent[] = [];
      for (let i = 0; i < count; i++) {
        const p = i * DIRENT_SIZE;
        const nameoff = blk.readUInt16LE(p + 8);
        let end = i + 1 < count ? blk.readUInt16LE(p + DIRENT_SIZE + 8) : blk.length;
        if (nameoff < first || end < nameoff || end > blk.length) throw new Error(`${this.name}: ${what}: block ${off / BLOCK_SIZE}, entry ${i}: name at ${nameoff}..${end} is out of order or outside the block`);
        const nul = blk.indexOf(0, nameoff);
        if (i + 1 === count && nul >= 0 && nul < end) end = nul;
        ents.push({ nid: Number(blk.readBigUInt64LE(p)), type: blk[p + 10]!, name: Buffer.from(blk.subarray(nameoff, end)) });
      }
      blocks.push(ents);
    }
    return blocks;
  }

  /** Resolves a "/"-separated path (no symlink following) to an inode. */
  lookup(path: string | Buffer): RawInode {
    let ino = this.inode(this.sb.rootNid);
    const parts = Buffer.from(path).toString("latin1").split("/").filter((s) => s.length > 0);
    for (const part of parts) {
      const name = Buffer.from(part, "latin1");
      const hit = this.dirBlocks(ino).flat().find((d) => d.name.equals(name));
      if (!hit) throw new Error(`${this.name}: not found: ${part}`);
      ino = this.inode(hit.nid);
    }
    return ino;
  }
}
