// The two on-disk inode forms. Compact (32 bytes) inodes have no mtime of their own: readers take
// the superblock's build time (or, since 6.15, build time + i_mtime which we leave 0), so they are
// only used for inodes whose mtime equals the build time.
import { COMPACT_INODE_SIZE, EXTENDED_INODE_SIZE } from "./format.ts";

export interface InodeFields {
  extended: boolean;
  layout: number;
  xattrICount: number;
  mode: number;
  nlink: number;
  size: number;
  /** raw_blkaddr, rdev or chunk format, by file kind and layout. */
  iu: number;
  ino: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec: number;
}

export const inodeSize = (extended: boolean): number => (extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE);

export function writeInode(buf: Buffer, off: number, f: InodeFields): void {
  buf.writeUInt16LE((f.layout << 1) | (f.extended ? 1 : 0), off);
  buf.writeUInt16LE(f.xattrICount, off + 2);
  buf.writeUInt16LE(f.mode, off + 4);
  if (f.extended) {
    buf.writeBigUInt64LE(BigInt(f.size), off + 8);
    buf.writeUInt32LE(f.iu >>> 0, off + 16);
    buf.writeUInt32LE(f.ino >>> 0, off + 20);
    buf.writeUInt32LE(f.uid >>> 0, off + 24);
    buf.writeUInt32LE(f.gid >>> 0, off + 28);
    buf.writeBigInt64LE(BigInt(f.mtimeSec), off + 32);
    buf.writeUInt32LE(f.mtimeNsec, off + 40);
    buf.writeUInt32LE(f.nlink, off + 44);
  } else {
    buf.writeUInt16LE(f.nlink, off + 6);
    buf.writeUInt32LE(f.size, off + 8);
    buf.writeUInt32LE(f.iu >>> 0, off + 16);
    buf.writeUInt32LE(f.ino >>> 0, off + 20);
    buf.writeUInt16LE(f.uid, off + 24);
    buf.writeUInt16LE(f.gid, off + 26);
  }
}

/** Linux new_encode_dev: 12-bit major, 20-bit minor, packed so old 8:8 numbers stay the same. */
export function encodeRdev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
