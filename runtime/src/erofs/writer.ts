// Reproducible EROFS writer. The image is, in order:
//   block 0            superblock (at 1024); in metadata-only images the inodes follow it directly
//   data area          "full" mode only: file contents, streamed before the metadata is laid out
//   metadata area      inodes in breadth-first order (small ones also fill block-end gaps), each
//                      followed by its xattrs and its inline tail or chunk map
//   shared xattrs      xattr_blkaddr
//   trailing blocks    directory blocks and long symlink targets that do not fit inline
// Nothing depends on the host or the clock: sorted names, breadth-first nids, the build time is the
// tree's most common mtime, zero UUID.
import { closeSync, openSync, writeSync } from "node:fs";
import type { Inode, Xattr } from "../tree/model.ts";
import { putBytes } from "./bytes.ts";
import { writeDirBlock } from "./dirent.ts";
import { BlockWriter, writeFileData } from "./data.ts";
import {
  BLOCK_BITS,
  BLOCK_SIZE,
  INCOMPAT_CHUNKED_FILE,
  INODE_SLOT,
  LAYOUT_CHUNK_BASED,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  MAX_CHUNK_BITS,
  MODE_TYPE,
  SUPER_OFFSET,
  SUPER_SIZE,
  alignUp,
  ceilLog2,
} from "./format.ts";
import { encodeRdev, inodeSize, writeInode } from "./inode.ts";
import { buildTime, collect, logicalSize, type Nodes } from "./layout.ts";
import { writeSuperblock } from "./superblock.ts";
import { MetaWindow } from "./window.ts";
import { releaseMemory, youngCollector } from "../system/memory.ts";
import { SharedXattrTable, checkXattrs, ibodySize, sortedXattrs, writeIbody, xattrICount } from "./xattr.ts";

export interface ErofsWriteOptions {
  /** "metadata": regular files carry no data blocks (composefs); "full": file data is stored in the image. */
  mode: "metadata" | "full";
  /**
   * The xattrs to store for an inode, where they are not all in `inode.xattrs`: asked for whenever
   * the writer needs them (the same list each time), so that values computed from the inode are
   * never held for every inode at once (composefs' redirect and metacopy, issue 13). The list and
   * its entries may be reused by the next call: the writer copies what it keeps.
   */
  xattrsOf?: (inode: Inode) => readonly Xattr[];
}

const OWN_XATTRS = (inode: Inode): readonly Xattr[] => inode.xattrs;

/** Inodes between young collections in the writer's loops (a few ms each, see youngCollector). */
const YOUNG_EVERY = 8192;
const U16 = 0xffff;
const U32 = 0xffffffff;

/** Writes the image to `outPath` (created/truncated) and returns its size in bytes. Deterministic: same tree → same bytes. */
export async function writeErofs(root: Inode, outPath: string, opts: ErofsWriteOptions): Promise<{ bytes: number }> {
  const nodes = collect(root);
  const bt = buildTime(nodes);
  const xattrsOf = (inode: Inode) => sortedXattrs((opts.xattrsOf ?? OWN_XATTRS)(inode));
  const shared = prepareNodes(nodes, bt, xattrsOf);
  // The xattr table's scratch and collect()'s identity map are garbage now; collected before encoding.
  releaseMemory();
  const fd = openSync(outPath, "w");
  try {
    let dataEnd = 1;
    if (opts.mode === "full") {
      const out = new BlockWriter(fd, 1);
      const scratch = Buffer.allocUnsafe(1 << 20);
      for (let n = 0; n < nodes.count; n++) {
        const inode = nodes.inodes[n]!;
        if (inode.kind !== "file") continue;
        const room = BLOCK_SIZE - inodeSize(nodes.extended[n] === 1) - nodes.ibody[n]!;
        const fl = writeFileData(out, inode.data, nodes.size[n]!, room, scratch);
        nodes.layout[n] = fl.layout;
        nodes.iu[n] = fl.iu;
        if (fl.tail) nodes.tail.set(n, fl.tail);
        nodes.tailLen[n] = fl.tailLen;
        if (fl.chunkMap) nodes.chunkMap.set(n, fl.chunkMap);
      }
      out.flush();
      dataEnd = out.block;
    }
    for (let n = 0; n < nodes.count; n++) decideLayout(nodes, n, opts.mode);
    const image = encode(fd, nodes, bt, shared, dataEnd > 1 ? dataEnd : 0, xattrsOf);
    // The superblock goes last: a metadata-only image's first block is also the window's.
    if (image.base > 0) {
      const block0 = Buffer.alloc(BLOCK_SIZE);
      image.super.copy(block0, SUPER_OFFSET);
      writeAll(fd, block0, 0);
    } else writeAll(fd, image.super, SUPER_OFFSET);
    return { bytes: image.base + image.size };
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, buf: Buffer, pos: number): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, pos + off);
}

/** Prepares xattrs and inode forms; returns the sealed shared xattr table. */
function prepareNodes(nodes: Nodes, bt: { sec: number; nsec: number }, xattrsOf: (inode: Inode) => readonly Xattr[]): SharedXattrTable {
  const shared = new SharedXattrTable();
  const tick = youngCollector(YOUNG_EVERY);
  const { inodes, xattrCount, xattrAt, ibody } = nodes;
  for (let n = 0; n < nodes.count; n++) {
    tick();
    const inode = inodes[n]!;
    checkInode(inode);
    const xs = xattrsOf(inode);
    if (xs.length === 0) continue;
    checkXattrs(xs);
    xattrCount[n] = xs.length;
    xattrAt[n] = shared.hash(xs);
    ibody[n] = ibodySize(0, xs);
  }
  // Only an inode with an entry seen twice can share one: the others' lists are not asked for again.
  const mayShare = (n: number) => xattrCount[n]! > 0 && shared.repeats(xattrAt[n]!, xattrCount[n]!);
  for (let n = 0; n < nodes.count; n++) if (mayShare(n)) shared.count(xattrsOf(inodes[n]!), xattrAt[n]!);
  shared.seal();
  for (let n = 0; n < nodes.count; n++) {
    const i = inodes[n]!;
    // Split again by encode(), from the same list: a split kept per inode (an ids array and copies
    // of the inline entries) was ~80 MiB of the 630k-file stage's image phase, where every file
    // shares its redirect and metacopy with nine copies.
    if (mayShare(n)) {
      const { shared: ids, inline } = shared.split(xattrsOf(i), xattrAt[n]!);
      if (ids.length > 0) ibody[n] = ibodySize(ids.length, inline);
    }
    const size = (nodes.size[n] = logicalSize(nodes, n));
    const extended = !(
      i.uid <= U16 &&
      i.gid <= U16 &&
      nodes.nlink[n]! <= U16 &&
      size <= U32 &&
      i.mtimeSec === bt.sec &&
      i.mtimeNsec === bt.nsec
    );
    nodes.extended[n] = extended ? 1 : 0;
  }
  return shared;
}

function checkInode(i: Inode): void {
  const u32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= U32;
  if (!u32(i.uid) || !u32(i.gid)) throw new Error(`uid/gid out of range: ${i.uid}:${i.gid}`);
  if (!Number.isInteger(i.perm) || i.perm < 0 || i.perm > 0o7777) throw new Error(`bad permission bits ${i.perm}`);
  // i_mtime is 64 bits, read by the kernel as signed: times before 1970 are stored as they are.
  if (!Number.isSafeInteger(i.mtimeSec)) throw new Error(`bad mtime ${i.mtimeSec}`);
  if (!Number.isInteger(i.mtimeNsec) || i.mtimeNsec < 0 || i.mtimeNsec > 999_999_999) throw new Error(`bad mtime nsec ${i.mtimeNsec}`);
  if (i.kind === "file" && !(Number.isSafeInteger(i.size) && i.size >= 0)) throw new Error(`bad file size ${i.size}`);
  if (i.kind === "symlink" && (!i.target || i.target.length === 0 || i.target.length > 4095))
    throw new Error(`symlink target must be 1..4095 bytes`);
  if ((i.kind === "chr" || i.kind === "blk") && !((i.rdevMajor ?? 0) <= 0xfff && (i.rdevMinor ?? 0) <= 0xfffff))
    throw new Error(`device number ${i.rdevMajor}:${i.rdevMinor} does not fit 12:20 bits`);
}

function decideLayout(nodes: Nodes, n: number, mode: ErofsWriteOptions["mode"]): void {
  const room = BLOCK_SIZE - inodeSize(nodes.extended[n] === 1) - nodes.ibody[n]!;
  const i = nodes.inodes[n]!;
  const size = nodes.size[n]!;
  switch (i.kind) {
    case "file":
      if (mode === "full") return; // decided while streaming the data
      if (size === 0) {
        nodes.layout[n] = LAYOUT_FLAT_PLAIN;
        return;
      }
      {
        // One null chunk covering the whole file (several beyond 8 TiB): stat sees the real size,
        // reads are served by the overlay's data layer.
        const bits = Math.min(MAX_CHUNK_BITS, Math.max(BLOCK_BITS, ceilLog2(size)));
        nodes.layout[n] = LAYOUT_CHUNK_BASED;
        nodes.iu[n] = bits - BLOCK_BITS;
        nodes.tailLen[n] = Math.ceil(size / 2 ** bits) * 4;
      }
      return;
    case "dir": {
      const blocks = nodes.dirPlan.get(n)!.perBlock.length;
      const tail = size - (blocks - 1) * BLOCK_SIZE;
      if (tail < BLOCK_SIZE && tail <= room) {
        nodes.layout[n] = LAYOUT_FLAT_INLINE;
        nodes.tailLen[n] = tail;
        nodes.trailingBlocks[n] = blocks - 1;
      } else {
        nodes.layout[n] = LAYOUT_FLAT_PLAIN;
        nodes.trailingBlocks[n] = blocks;
      }
      return;
    }
    case "symlink":
      if (size <= room) {
        nodes.layout[n] = LAYOUT_FLAT_INLINE;
        nodes.tail.set(n, i.target!);
        nodes.tailLen[n] = size;
      } else {
        nodes.layout[n] = LAYOUT_FLAT_PLAIN;
        nodes.trailingBlocks[n] = 1;
      }
      return;
    case "chr":
    case "blk":
      nodes.layout[n] = LAYOUT_FLAT_PLAIN;
      nodes.iu[n] = encodeRdev(i.rdevMajor ?? 0, i.rdevMinor ?? 0);
      return;
    default:
      nodes.layout[n] = LAYOUT_FLAT_PLAIN;
  }
}

/**
 * Inode placement in nid order, appending; an inline tail must sit in the same block as its inode,
 * so an inline inode that does not fit the rest of a block starts the next one. The gap it leaves
 * is filled by later inodes (best fit, as mkfs.erofs does), which matters in full images where
 * tails are large. Gaps are bucketed by free 32-byte slots, so placement stays linear.
 */
function placer(start: number): (size: number, inline: boolean) => number {
  const SLOTS = BLOCK_SIZE / INODE_SLOT;
  let off = start;
  const buckets: number[][] = Array.from({ length: SLOTS }, () => []);
  const addGap = (at: number) => {
    const free = (alignUp(at + 1, BLOCK_SIZE) - at) / INODE_SLOT;
    if (free > 0 && free < SLOTS) buckets[free]!.push(at);
  };
  return (size, inline) => {
    if (size > 0)
      for (let free = Math.ceil(size / INODE_SLOT); free < SLOTS; free++) {
        const at = buckets[free]!.pop();
        if (at === undefined) continue;
        addGap(alignUp(at + size, INODE_SLOT));
        return at;
      }
    off = alignUp(off, INODE_SLOT);
    if (inline && (off % BLOCK_SIZE) + size > BLOCK_SIZE) {
      addGap(off);
      off = alignUp(off, BLOCK_SIZE);
    }
    const at = off;
    off += size;
    return at;
  };
}

function encode(fd: number, nodes: Nodes, bt: { sec: number; nsec: number }, shared: SharedXattrTable, metaBlk: number, xattrsOf: (inode: Inode) => readonly Xattr[]) {
  const metaBase = metaBlk * BLOCK_SIZE;
  const sharedArea = shared.area;
  const place = placer(metaBlk > 0 ? metaBase : SUPER_OFFSET + SUPER_SIZE);
  const { offset, nid, iu, trailingBlocks, layout, ibody, tailLen, extended } = nodes;
  for (let n = 0; n < nodes.count; n++) {
    offset[n] = place(inodeSize(extended[n] === 1) + ibody[n]! + tailLen[n]!, layout[n] === LAYOUT_FLAT_INLINE);
    nid[n] = (offset[n]! - metaBase) / INODE_SLOT;
  }
  let block = alignUp(place(0, false), BLOCK_SIZE) / BLOCK_SIZE;
  const xattrBlk = sharedArea.length > 0 ? block : 0;
  block += alignUp(sharedArea.length, BLOCK_SIZE) / BLOCK_SIZE;
  for (let n = 0; n < nodes.count; n++) {
    if (trailingBlocks[n] === 0) continue;
    iu[n] = block;
    block += trailingBlocks[n]!;
  }
  const out = new MetaWindow(fd, metaBase);
  // Gaps are filled far behind the last inode, so inodes are written in offset order, not nid order.
  const order = new Uint32Array(nodes.count);
  for (let n = 0; n < nodes.count; n++) order[n] = n;
  order.sort((a, b) => offset[a]! - offset[b]!);

  let incompat = 0;
  const tick = youngCollector(YOUNG_EVERY);
  for (const n of order) {
    // The encoder's garbage (xattr lists) would otherwise pile up beside the model: the heap grew
    // 16 MB through 70k inodes, and RSS peaked ~7 MiB higher (issue 13).
    tick();
    const i = nodes.inodes[n]!;
    const isz = inodeSize(extended[n] === 1);
    const at = out.at(offset[n]! - metaBase, isz + ibody[n]! + tailLen[n]!);
    const { buf, dv } = out;
    writeInode(dv, at, {
      extended: extended[n] === 1,
      layout: layout[n]!,
      xattrICount: xattrICount(ibody[n]!),
      mode: MODE_TYPE[i.kind] | i.perm,
      nlink: nodes.nlink[n]!,
      size: nodes.size[n]!,
      iu: iu[n]!,
      ino: n + 1,
      uid: i.uid,
      gid: i.gid,
      mtimeSec: i.mtimeSec,
      mtimeNsec: i.mtimeNsec,
    });
    if (ibody[n]! > 0) {
      const { shared: ids, inline } = shared.split(xattrsOf(i), nodes.xattrAt[n]!);
      writeIbody(buf, at + isz, ids, inline);
    }
    const tailAt = at + isz + ibody[n]!;
    if (layout[n] === LAYOUT_CHUNK_BASED) {
      incompat |= INCOMPAT_CHUNKED_FILE;
      const map = nodes.chunkMap.get(n);
      if (map) for (let k = 0; k < map.length; k++) dv.setUint32(tailAt + 4 * k, map[k]!, true);
      else buf.fill(0xff, tailAt, tailAt + tailLen[n]!);
    } else {
      const tail = nodes.tail.get(n);
      if (tail) putBytes(buf, tailAt, tail);
    }
    // A directory's last block of entries may be its inline tail, written here with its inode.
    if (i.kind === "dir" && layout[n] === LAYOUT_FLAT_INLINE) {
      const perBlock = nodes.dirPlan.get(n)!.perBlock;
      const last = perBlock.length - 1;
      writeDirBlock(buf, dv, tailAt, nodes, nodes.childFrom[n + 1]! - perBlock[last]!, nodes.childFrom[n + 1]!);
    }
  }
  if (xattrBlk) out.put(xattrBlk * BLOCK_SIZE - metaBase, sharedArea);
  // Trailing blocks were numbered in node order.
  for (let n = 0; n < nodes.count; n++) {
    if (trailingBlocks[n] === 0) continue;
    const i = nodes.inodes[n]!;
    const pos = iu[n]! * BLOCK_SIZE - metaBase;
    if (i.kind === "symlink") out.put(pos, i.target!);
    else if (i.kind === "dir") {
      const perBlock = nodes.dirPlan.get(n)!.perBlock;
      let k = nodes.childFrom[n]!;
      for (let b = 0; b < trailingBlocks[n]!; b++) {
        const at = out.at(pos + b * BLOCK_SIZE, BLOCK_SIZE);
        writeDirBlock(out.buf, out.dv, at, nodes, k, k + perBlock[b]!);
        k += perBlock[b]!;
      }
    }
  }
  const size = block * BLOCK_SIZE - metaBase;
  out.finish(size);
  const sb = Buffer.alloc(SUPER_OFFSET + SUPER_SIZE);
  writeSuperblock(sb, 0, {
    rootNid: nid[0]!,
    inos: nodes.count,
    buildTimeSec: bt.sec,
    buildTimeNsec: bt.nsec,
    blocks: block,
    metaBlkaddr: metaBlk,
    xattrBlkaddr: xattrBlk,
    featureIncompat: incompat,
  });
  return { size, base: metaBase, super: sb.subarray(SUPER_OFFSET) };
}
