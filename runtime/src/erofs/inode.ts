// The two on-disk inode forms. Compact (32 bytes) inodes have no mtime of their own: readers take
// the superblock's build time (or, since 6.15, build time + i_mtime which we leave 0), so they are
// only used for inodes whose mtime equals the build time.
import { put64 } from "./bytes.ts";
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

export function writeInode(dv: DataView, off: number, f: InodeFields): void {
  dv.setUint16(off, (f.layout << 1) | (f.extended ? 1 : 0), true);
  dv.setUint16(off + 2, f.xattrICount, true);
  dv.setUint16(off + 4, f.mode, true);
  if (f.extended) {
    put64(dv, off + 8, f.size);
    dv.setUint32(off + 16, f.iu >>> 0, true);
    dv.setUint32(off + 20, f.ino >>> 0, true);
    dv.setUint32(off + 24, f.uid >>> 0, true);
    dv.setUint32(off + 28, f.gid >>> 0, true);
    put64(dv, off + 32, f.mtimeSec);
    dv.setUint32(off + 40, f.mtimeNsec, true);
    dv.setUint32(off + 44, f.nlink, true);
  } else {
    dv.setUint16(off + 6, f.nlink, true);
    dv.setUint32(off + 8, f.size, true);
    dv.setUint32(off + 16, f.iu >>> 0, true);
    dv.setUint32(off + 20, f.ino >>> 0, true);
    dv.setUint16(off + 24, f.uid, true);
    dv.setUint16(off + 26, f.gid, true);
  }
}

/** Linux new_encode_dev: 12-bit major, 20-bit minor, packed so old 8:8 numbers stay the same. */
export function encodeRdev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
