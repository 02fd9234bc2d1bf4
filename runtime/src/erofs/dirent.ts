// Directory data: blocks of 12-byte dirents followed by their names. The first dirent's nameoff
// tells readers how many dirents the block holds; names are not NUL-terminated, the last one ends
// at the first NUL or at the end of the directory's data in that block. No dirent crosses a block.
import { BLOCK_SIZE, DIRENT_SIZE } from "./format.ts";

export interface DirPlan {
  /** Number of dirents in each block, in order. */
  perBlock: number[];
  /** i_size: full blocks count as BLOCK_SIZE, the last one as the bytes it uses. */
  size: number;
}

/** `names` must already be sorted (Buffer.compare), "." and ".." included. */
export function planDir(names: readonly Buffer[]): DirPlan {
  const perBlock: number[] = [];
  let n = 0;
  let used = 0;
  for (const name of names) {
    const need = DIRENT_SIZE + name.length;
    if (used + need > BLOCK_SIZE) {
      perBlock.push(n);
      n = 0;
      used = 0;
    }
    n++;
    used += need;
  }
  perBlock.push(n);
  return { perBlock, size: (perBlock.length - 1) * BLOCK_SIZE + used };
}

export interface DirItem {
  name: Buffer;
  nid: number;
  type: number;
}

/** Writes one block's dirents and names at `off`. */
export function writeDirBlock(buf: Buffer, off: number, items: readonly DirItem[]): void {
  let nameoff = items.length * DIRENT_SIZE;
  let p = off;
  for (const it of items) {
    buf.writeUInt32LE(it.nid % 0x100000000, p);
    buf.writeUInt32LE(Math.floor(it.nid / 0x100000000), p + 4);
    buf.writeUInt16LE(nameoff, p + 8);
    buf[p + 10] = it.type;
    p += DIRENT_SIZE;
    it.name.copy(buf, off + nameoff);
    nameoff += it.name.length;
  }
}
