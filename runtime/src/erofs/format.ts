// EROFS on-disk constants (linux fs/erofs/erofs_fs.h). Only the uncompressed subset is written: the
// images must stay readable by erofs-utils 1.5 and kernels from 5.4 (full images) / 6.6 (composefs).

export const BLOCK_BITS = 12;
export const BLOCK_SIZE = 1 << BLOCK_BITS;
export const SUPER_OFFSET = 1024;
export const SUPER_SIZE = 128;
export const MAGIC = 0xe0f5e1e2;

export const INCOMPAT_CHUNKED_FILE = 0x4;

export const LAYOUT_FLAT_PLAIN = 0;
export const LAYOUT_FLAT_INLINE = 2;
export const LAYOUT_CHUNK_BASED = 4;

export const COMPACT_INODE_SIZE = 32;
export const EXTENDED_INODE_SIZE = 64;
/** nid = byte offset / 32 from the metadata area start; inodes are aligned to it. */
export const INODE_SLOT = 32;

export const XATTR_IBODY_HEADER_SIZE = 12;
export const XATTR_ENTRY_HEADER_SIZE = 4;
export const DIRENT_SIZE = 12;
export const NULL_ADDR = 0xffffffff;
/** chunkbits = BLOCK_BITS + (format & 0x1f): 5 bits, so at most 2^43-byte chunks. */
export const MAX_CHUNK_BITS = BLOCK_BITS + 31;

export const S_IFMT = 0o170000;
export const MODE_TYPE = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  chr: 0o020000,
  blk: 0o060000,
  fifo: 0o010000,
  sock: 0o140000,
} as const;

/** EROFS_FT_*, the generic FT_* dirent types. */
export const FILE_TYPE = {
  file: 1,
  dir: 2,
  chr: 3,
  blk: 4,
  fifo: 5,
  sock: 6,
  symlink: 7,
} as const;

export const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Smallest b with 2^b >= n (n >= 1), exact for any safe integer. */
export function ceilLog2(n: number): number {
  if (n <= 1) return 0;
  let b = Math.ceil(Math.log2(n));
  while (b > 0 && 2 ** (b - 1) >= n) b--;
  while (2 ** b < n) b++;
  return b;
}
