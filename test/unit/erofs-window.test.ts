import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MetaWindow } from "../../runtime/src/erofs/window.ts";

const tmp = mkdtempSync(join(tmpdir(), "erofs-window-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes `writes` through a window of `size` bytes into a file whose area starts at `base`; returns the file. */
function through(name: string, base: number, size: number, area: number, writes: [number, Buffer][]): Buffer {
  const path = join(tmp, name);
  const fd = openSync(path, "w");
  try {
    if (base > 0) writeSync(fd, Buffer.alloc(base, 0xee), 0, base, 0);
    const w = new MetaWindow(fd, base, size);
    for (const [pos, bytes] of writes) w.put(pos, bytes);
    w.finish(area);
  } finally {
    closeSync(fd);
  }
  return readFileSync(path);
}

/** The same writes into one buffer of the whole area. */
function flat(base: number, area: number, writes: [number, Buffer][]): Buffer {
  const b = Buffer.concat([Buffer.alloc(base, 0xee), Buffer.alloc(area)]);
  for (const [pos, bytes] of writes) bytes.copy(b, base + pos);
  return b;
}

const bytes = (len: number, seed: number) => Buffer.from(Array.from({ length: len }, (_, i) => (i * 31 + seed) & 0xff || 1));

describe("MetaWindow", () => {
  it("gives the bytes of one whole-area buffer, across slides that carry a shared block over", () => {
    // 4 KiB blocks, an 8 KiB window: records share blocks, straddle window ends and skip gaps.
    const writes: [number, Buffer][] = [];
    let pos = 1152;
    for (let i = 0; i < 400; i++) {
      const len = 32 + ((i * 97) % 480);
      writes.push([pos, bytes(len, i)]);
      pos += len + (i % 7 === 0 ? 4096 * 3 : 32);
    }
    const area = pos + 4096 - (pos % 4096);
    for (const base of [0, 3 * 4096])
      expect(through(`slides-${base}`, base, 8192, area, writes).equals(flat(base, area, writes))).toBe(true);
  });

  it("grows for a record larger than the window", () => {
    const writes: [number, Buffer][] = [[100, bytes(50, 1)], [5000, bytes(40_000, 2)], [45_100, bytes(10, 3)]];
    expect(through("grow", 0, 4096, 49_152, writes).equals(flat(0, 49_152, writes))).toBe(true);
  });

  it("refuses a write behind the window (the writer's order is wrong)", () => {
    const fd = openSync(join(tmp, "behind"), "w");
    try {
      const w = new MetaWindow(fd, 0, 4096);
      w.put(20_000, bytes(10, 1));
      expect(() => w.put(100, bytes(10, 2))).toThrow(/out of order \(100 is behind 16384\)/);
    } finally {
      closeSync(fd);
    }
  });
});
