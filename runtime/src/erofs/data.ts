// "full" mode file data: streamed chunk by chunk from memory or disk into the data area, so a file
// is never held whole in memory. The layout of each file is decided here:
//   - FLAT_INLINE: contiguous blocks, the last partial block packed after the inode;
//   - FLAT_PLAIN: contiguous blocks;
//   - CHUNK_BASED: only for files with all-zero chunks (holes), which then cost nothing.
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import type { FileData } from "../tree/model.ts";
import {
  BLOCK_BITS,
  BLOCK_SIZE,
  LAYOUT_CHUNK_BASED,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  NULL_ADDR,
  alignUp,
  ceilLog2,
} from "./format.ts";

/** Below this size holes are not looked for: flat files stay readable by kernels without chunk support (< 5.15). */
export const SPARSE_MIN_SIZE = 1 << 20;
const MAX_CHUNK_BITS_FULL = 20;
const ZERO = Buffer.alloc(1 << MAX_CHUNK_BITS_FULL);

/** Sequential block writer with a staging buffer so the disk sees large writes. */
export class BlockWriter {
  private stage = Buffer.alloc(4 << 20);
  private used = 0;
  private stageBlock: number;
  constructor(
    private fd: number,
    public block: number,
  ) {
    this.stageBlock = block;
  }

  /** Appends `data`, zero-padded to whole blocks; returns its first block. */
  write(data: Uint8Array): number {
    const first = this.block;
    const padded = alignUp(data.length, BLOCK_SIZE);
    if (this.used + padded > this.stage.length) this.flush();
    if (padded > this.stage.length) {
      writeSync(this.fd, data, 0, data.length, this.block * BLOCK_SIZE);
      if (padded > data.length) writeSync(this.fd, ZERO, 0, padded - data.length, this.block * BLOCK_SIZE + data.length);
      this.stageBlock = this.block += padded / BLOCK_SIZE;
      return first;
    }
    this.stage.set(data, this.used);
    this.stage.fill(0, this.used + data.length, this.used + padded);
    this.used += padded;
    this.block += padded / BLOCK_SIZE;
    return first;
  }

  flush(): void {
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.stage, off, this.used - off, this.stageBlock * BLOCK_SIZE + off);
    this.used = 0;
    this.stageBlock = this.block;
  }
}

interface Source {
  read(pos: number, len: number): Buffer;
  close(): void;
}

function openSource(data: FileData | undefined, size: number, buf: Buffer): Source {
  if (data?.kind === "bytes") {
    if (data.bytes.length !== size) throw new Error(`file data is ${data.bytes.length} bytes but its size is ${size}`);
    const b = Buffer.from(data.bytes.buffer, data.bytes.byteOffset, data.bytes.length);
    return { read: (pos, len) => b.subarray(pos, pos + len), close: () => {} };
  }
  if (data?.kind === "path") {
    const fd = openSync(data.path, "r");
    return {
      read(pos, len) {
        let got = 0;
        while (got < len) {
          const n = readSync(fd, buf, got, len - got, pos + got);
          if (n === 0) throw new Error(`${data.path.toString()}: shorter than its recorded size ${size}`);
          got += n;
        }
        return buf.subarray(0, len);
      },
      close: () => closeSync(fd),
    };
  }
  throw new Error(`full images need file contents ("path" or "bytes"), got ${data?.kind ?? "none"}`);
}

export interface FileLayout {
  layout: number;
  iu: number;
  tail?: Buffer;
  tailLen: number;
  chunkMap?: Uint32Array;
}

/**
 * Writes one file's data. `inlineRoom` is how many tail bytes fit after the inode and its xattrs
 * in one block; the tail is packed there when the file has no holes.
 */
export function writeFileData(out: BlockWriter, data: FileData | undefined, size: number, inlineRoom: number, scratch: Buffer): FileLayout {
  if (size === 0) return { layout: LAYOUT_FLAT_PLAIN, iu: 0, tailLen: 0 };
  const sparse = size >= SPARSE_MIN_SIZE;
  const chunkBits = Math.min(MAX_CHUNK_BITS_FULL, Math.max(BLOCK_BITS, ceilLog2(size) - 10));
  const chunk = 2 ** chunkBits;
  const count = Math.ceil(size / chunk);
  const map = new Uint32Array(count);
  const tailLen = size % BLOCK_SIZE;
  const canInline = tailLen > 0 && tailLen <= inlineRoom;
  const src = openSource(data, size, scratch);
  let holes = false;
  let first = -1;
  let tail: Buffer | undefined;
  try {
    for (let i = 0; i < count; i++) {
      const pos = i * chunk;
      const len = Math.min(chunk, size - pos);
      const bytes = src.read(pos, len);
      if (sparse && bytes.equals(ZERO.subarray(0, len))) {
        map[i] = NULL_ADDR;
        holes = true;
        continue;
      }
      const pack = i === count - 1 && !holes && canInline;
      const body = pack ? bytes.subarray(0, len - tailLen) : bytes;
      map[i] = body.length > 0 ? out.write(body) : 0;
      if (first < 0 && body.length > 0) first = map[i]!;
      if (pack) tail = Buffer.from(bytes.subarray(len - tailLen));
    }
  } finally {
    src.close();
  }
  if (holes) return { layout: LAYOUT_CHUNK_BASED, iu: chunkBits - BLOCK_BITS, tailLen: count * 4, chunkMap: map };
  if (tail) return { layout: LAYOUT_FLAT_INLINE, iu: Math.max(first, 0), tail, tailLen: tail.length };
  return { layout: LAYOUT_FLAT_PLAIN, iu: first, tailLen: 0 };
}
