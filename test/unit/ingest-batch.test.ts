import { describe, expect, it } from "vitest";
import { newReplies, packBatch, putReply, unpackFile } from "../../runtime/src/store/ingest-pool.ts";
import type { SourceFile } from "../../runtime/src/store/objects.ts";

const file = (path: Buffer, i: number): SourceFile => ({
  path, dev: 2049 + i, ino: 2 ** 40 + i, size: 2 ** 33 + i, mtimeSec: -5 + i, mtimeNsec: 999_999_999 - i, ctimeSec: 2 ** 34, ctimeNsec: i,
});

describe("an ingest batch, packed for a worker", () => {
  // A path that is not UTF-8, a one-byte path and one near PATH_MAX.
  const paths = [Buffer.from("/src/usr/bin/a"), Buffer.from([0x2f, 0xff, 0xfe, 0x80, 0x41]), Buffer.from("/"), Buffer.from("/src/" + "x".repeat(4000))];
  const files = [file(Buffer.from("/before"), 99), ...paths.map(file), file(Buffer.from("/after"), 98)];

  it("gives back every file of its slice, path bytes and stamp exactly", () => {
    const b = packBatch(files, 1, paths.length, { sysroot: "/s", tmpDir: "/s/tmp", how: { consume: false, copyRange: false } });
    expect(b.first).toBe(1);
    expect(b.count).toBe(paths.length);
    for (let i = 0; i < paths.length; i++) expect(unpackFile(b, i)).toEqual(files[1 + i]);
  });

  it("survives being transferred, and the sender keeps nothing of it", () => {
    const b = packBatch(files, 1, paths.length, { sysroot: "/s", tmpDir: "/s/tmp", how: { consume: true, copyRange: true } });
    // Each array owns its buffer whole: transferring it detaches nothing but the batch's own bytes.
    for (const a of [b.paths, b.ends, b.keys]) expect(a.byteLength).toBe(a.buffer.byteLength);
    const got = structuredClone(b, { transfer: [b.paths.buffer, b.ends.buffer, b.keys.buffer] as ArrayBuffer[] });
    expect(b.paths.byteLength).toBe(0);
    expect(got.how).toEqual({ consume: true, copyRange: true });
    for (let i = 0; i < paths.length; i++) expect(unpackFile(got, i)).toEqual(files[1 + i]);
    // The paths the tree model holds are untouched by the transfer.
    expect(files[2]!.path).toEqual(paths[1]);
  });
});

describe("a worker's replies for a batch", () => {
  const hex = (i: number) => i.toString(16).padStart(2, "0").repeat(32);
  it("carry each file's digest as 32 bytes, whether it was staged and its bytes, through a transfer", () => {
    const r = newReplies(64, 3);
    putReply(r, { digest: hex(1), tmp: "/s/tmp/0/64", bytes: 2 ** 33 });
    putReply(r, { digest: hex(0xfe), bytes: 0 });
    const got = structuredClone(r, { transfer: [r.digests.buffer, r.staged.buffer, r.bytes.buffer] as ArrayBuffer[] });
    expect(r.digests.byteLength).toBe(0);
    expect([got.first, got.count]).toEqual([64, 2]);
    expect(Buffer.from(got.digests.subarray(0, 32)).toString("hex")).toBe(hex(1));
    expect(Buffer.from(got.digests.subarray(32, 64)).toString("hex")).toBe(hex(0xfe));
    expect([...got.staged.subarray(0, 2)]).toEqual([1, 0]);
    expect([...got.bytes.subarray(0, 2)]).toEqual([2 ** 33, 0]);
  });
});
