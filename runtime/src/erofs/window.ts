// The metadata area goes to disk through one reused window instead of one buffer of the whole area:
// for a 60k-file composefs image that buffer was 16 MB, allocated on top of everything the image
// phase holds, and it was staging's memory peak (issue 13). Writes must come in position order, as
// the writer arranges (inodes by offset, then the shared xattrs, then the trailing blocks).
import { ftruncateSync, writeSync } from "node:fs";
import { view } from "./bytes.ts";
import { BLOCK_SIZE } from "./format.ts";

const WINDOW = 1 << 20;

export class MetaWindow {
  buf: Buffer;
  dv: DataView;
  /** Area position of buf[0]. */
  private start = 0;
  /** One past the highest area position written so far. */
  private end = 0;

  /** Positions are relative to the area, which starts at byte `base` of the file `fd`. */
  constructor(private readonly fd: number, private readonly base: number, size = WINDOW) {
    this.buf = Buffer.alloc(size);
    this.dv = view(this.buf);
  }

  /**
   * Makes area bytes [pos, pos + len) writable and returns where they are in `buf`. A position
   * behind the window is a bug in the caller's order, not something to write twice.
   */
  at(pos: number, len: number): number {
    if (pos < this.start) throw new Error(`erofs: metadata written out of order (${pos} is behind ${this.start})`);
    if (pos + len > this.start + this.buf.length) this.slide(pos, len);
    if (pos + len > this.end) this.end = pos + len;
    return pos - this.start;
  }

  /** Copies `bytes` to area position `pos`. */
  put(pos: number, bytes: Uint8Array): void {
    // at() first: it may replace the buffer.
    const off = this.at(pos, bytes.length);
    this.buf.set(bytes, off);
  }

  /** Writes what is held and sizes the file to end at area position `size`. */
  finish(size: number): void {
    this.flush();
    ftruncateSync(this.fd, this.base + size);
  }

  private flush(): void {
    const len = Math.max(0, this.end - this.start);
    let off = 0;
    while (off < len) off += writeSync(this.fd, this.buf, off, len - off, this.base + this.start + off);
  }

  /**
   * Moves the window to the block of `pos`. That block may already hold earlier writes (small
   * inodes share blocks), so the bytes from there on are carried over, not zeroed.
   */
  private slide(pos: number, len: number): void {
    this.flush();
    const next = pos - (pos % BLOCK_SIZE);
    const keep = Math.max(0, this.end - next);
    const size = Math.max(this.buf.length, pos + len - next);
    const old = this.buf;
    if (size > old.length) {
      this.buf = Buffer.alloc(size);
      this.dv = view(this.buf);
    }
    if (keep > 0) {
      if (this.buf === old) old.copyWithin(0, next - this.start, next - this.start + keep);
      else old.copy(this.buf, 0, next - this.start, next - this.start + keep);
    }
    this.buf.fill(0, keep);
    this.start = next;
  }
}
