// Directory data: blocks of 12-byte dirents followed by their names. The first dirent's nameoff
// tells readers how many dirents the block holds; names are not NUL-terminated, the last one ends
// at the first NUL or at the end of the directory's data in that block. No dirent crosses a block.
import { put64, putBytes } from "./bytes.ts";
import { BLOCK_SIZE, DIRENT_SIZE, FILE_TYPE } from "./format.ts";

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

/** A directory entry as the layout holds it (structural, so this module needs no layout types). */
export interface DirChild {
  name: Buffer;
  node: { nid: number; inode: { kind: keyof typeof FILE_TYPE } };
}

/** Writes the dirents and names of children[from, to) as one block at `off`. */
export function writeDirBlock(buf: Buffer, dv: DataView, off: number, children: readonly DirChild[], from: number, to: number): void {
  let nameoff = (to - from) * DIRENT_SIZE;
  let p = off;
  for (let i = from; i < to; i++) {
    const c = children[i]!;
    put64(dv, p, c.node.nid);
    dv.setUint16(p + 8, nameoff, true);
    buf[p + 10] = FILE_TYPE[c.node.inode.kind];
    p += DIRENT_SIZE;
    putBytes(buf, off + nameoff, c.name);
    nameoff += c.name.length;
  }
}
