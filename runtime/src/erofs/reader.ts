// A small EROFS reader for the formats this writer produces (uncompressed: flat, inline, chunk
// maps). It lets unit tests check images without root or a kernel, and lets tools inspect an image.
import {
  BLOCK_SIZE,
  DIRENT_SIZE,
  INODE_SLOT,
  LAYOUT_CHUNK_BASED,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  MAGIC,
  NULL_ADDR,
  SUPER_OFFSET,
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

export class ErofsImage {
  readonly sb: SuperInfo;
  constructor(readonly img: Buffer) {
    const o = SUPER_OFFSET;
    if (img.readUInt32LE(o) !== MAGIC) throw new Error("not an EROFS image");
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

  inode(nid: number): RawInode {
    const off = this.sb.metaBlkaddr * BLOCK_SIZE + nid * INODE_SLOT;
    const b = this.img;
    const format = b.readUInt16LE(off);
    const extended = (format & 1) === 1;
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
    const start = ino.offset + (ino.extended ? 64 : 32);
    const end = ino.offset + ino.headerSize;
    const sharedCount = b[start + 4]!;
    const out: { name: Buffer; value: Buffer; shared: boolean }[] = [];
    const entry = (p: number, shared: boolean): number => {
      const nameLen = b[p]!;
      const index = b[p + 1]!;
      const valueLen = b.readUInt16LE(p + 2);
      const prefix = PREFIX_NAMES[index];
      if (prefix === undefined) throw new Error(`unknown xattr index ${index}`);
      const name = Buffer.concat([Buffer.from(prefix), b.subarray(p + 4, p + 4 + nameLen)]);
      out.push({ name, value: Buffer.from(b.subarray(p + 4 + nameLen, p + 4 + nameLen + valueLen)), shared });
      return Math.ceil((4 + nameLen + valueLen) / 4) * 4;
    };
    let p = start + XATTR_IBODY_HEADER_SIZE;
    for (let i = 0; i < sharedCount; i++, p += 4) entry(this.sb.xattrBlkaddr * BLOCK_SIZE + 4 * b.readUInt32LE(p), true);
    while (p < end) p += entry(p, false);
    return out;
  }

  /** The inode's data bytes (holes read as zeros). Only for images that fit in memory. */
  data(ino: RawInode): Buffer {
    const out = Buffer.alloc(ino.size);
    const tailAt = ino.offset + ino.headerSize;
    if (ino.layout === LAYOUT_CHUNK_BASED) {
      const chunk = BLOCK_SIZE * 2 ** (ino.iu & 0x1f);
      const count = Math.ceil(ino.size / chunk);
      for (let i = 0; i < count; i++) {
        const addr = this.img.readUInt32LE(tailAt + 4 * i);
        if (addr === NULL_ADDR) continue;
        const len = Math.min(chunk, ino.size - i * chunk);
        this.img.copy(out, i * chunk, addr * BLOCK_SIZE, addr * BLOCK_SIZE + len);
      }
      return out;
    }
    const inline = ino.layout === LAYOUT_FLAT_INLINE;
    if (!inline && ino.layout !== LAYOUT_FLAT_PLAIN) throw new Error(`unsupported layout ${ino.layout}`);
    const full = inline ? Math.floor(ino.size / BLOCK_SIZE) * BLOCK_SIZE : ino.size;
    this.img.copy(out, 0, ino.iu * BLOCK_SIZE, ino.iu * BLOCK_SIZE + full);
    if (inline) this.img.copy(out, full, tailAt, tailAt + (ino.size - full));
    return out;
  }

  /** Directory entries block by block, "." and ".." included. */
  dirBlocks(ino: RawInode): RawDirent[][] {
    const data = this.data(ino);
    const blocks: RawDirent[][] = [];
    for (let off = 0; off < data.length; off += BLOCK_SIZE) {
      const blk = data.subarray(off, Math.min(off + BLOCK_SIZE, data.length));
      const count = blk.readUInt16LE(8) / DIRENT_SIZE;
      const ents: RawDirent[] = [];
      for (let i = 0; i < count; i++) {
        const p = i * DIRENT_SIZE;
        const nameoff = blk.readUInt16LE(p + 8);
        let end = i + 1 < count ? blk.readUInt16LE(p + DIRENT_SIZE + 8) : blk.length;
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
      if (!hit) throw new Error(`not found: ${part}`);
      ino = this.inode(hit.nid);
    }
    return ino;
  }
}
