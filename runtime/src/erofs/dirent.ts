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

/** Directory entries as the layout holds them, in columns (structural, so this module needs no layout types). */
export interface DirEntries {
  childName: readonly Buffer[];
  childNode: Uint32Array;
  nid: Float64Array;
  inodes: readonly { kind: keyof typeof FILE_TYPE }[];
}

/** Writes the dirents and names of entries [from, to) as one block at `off`. */
export function writeDirBlock(buf: Buffer, dv: DataView, off: number, d: DirEntries, from: number, to: number): void {
  let nameoff = (to - from) * DIRENT_SIZE;
  let p = off;
  for (let i = from; i < to; i++) {
    const node = d.childNode[i]!;
    const name = d.childName[i]!;
    put64(dv, p, d.nid[node]!);
    dv.setUint16(p + 8, nameoff, true);
    buf[p + 10] = FILE_TYPE[d.inodes[node]!.kind];
    p += DIRENT_SIZE;
    putBytes(buf, off + nameoff, name);
    nameoff += name.length;
  }
}
