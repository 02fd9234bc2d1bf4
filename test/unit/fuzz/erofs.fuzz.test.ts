// Fuzzing the EROFS reader: images written by our own writer from random trees read back exactly;
// the same images with bytes flipped, fields set to huge values or cut short, walked completely,
// must give values or an Error naming the image. Never a RangeError out of a Buffer read, never a
// huge allocation from a size field.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErofsImage, MAX_DATA, type RawInode } from "../../../runtime/src/erofs/reader.ts";
import { writeErofs } from "../../../runtime/src/erofs/writer.ts";
import { MAGIC, MODE_TYPE, S_IFMT, SUPER_OFFSET } from "../../../runtime/src/erofs/format.ts";
import { encodeRdev } from "../../../runtime/src/erofs/inode.ts";
import { sortEntries, sortXattrs, walk, type Inode } from "../../../runtime/src/tree/model.ts";
import { expectRefused, mutate, mutationArb, outcome, params, RUNS, SEED, timeoutFor } from "./lib.ts";

const NAME = "fuzz.erofs";
let tmp: string;
beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), "fuzz-erofs-")); });
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const name = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."abcxyz019._-"), minLength: 1, maxLength: 16 }),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b.map((x) => (x === 0 || x === 0x2f ? 0x61 : x))).toString("latin1")),
  fc.integer({ min: 100, max: 255 }).map((n) => "n".repeat(n)),
).filter((n) => n !== "." && n !== "..");

const attrs = {
  perm: fc.integer({ min: 0, max: 0o7777 }),
  uid: fc.oneof(fc.constantFrom(0, 1000, 65535), fc.nat({ max: 0xffffffff })),
  gid: fc.oneof(fc.constantFrom(0, 100), fc.nat({ max: 0xffffffff })),
  mtimeSec: fc.oneof(fc.constant(1_700_000_000), fc.nat({ max: 2 ** 40 })),
  mtimeNsec: fc.oneof(fc.constant(0), fc.nat({ max: 999_999_999 })),
  xattrs: fc.array(fc.record({ name: fc.tuple(fc.constantFrom("user.", "trusted.", "security."), fc.string({ unit: fc.constantFrom(..."abcdef._"), minLength: 1, maxLength: 12 })).map(([p, n]) => Buffer.from(p + n)), value: fc.uint8Array({ maxLength: 64 }).map((v) => Buffer.from(v)) }), { maxLength: 3 })
    .map((xs) => sortXattrs([...new Map(xs.map((x) => [x.name.toString("latin1"), x])).values()])),
  size: fc.constant(0),
};

type TreeArbs = { node: Inode; dir: Inode };
const tree = fc.letrec<TreeArbs>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant("file" as const), ...attrs, data: fc.oneof({ weight: 5, arbitrary: fc.uint8Array({ maxLength: 300 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 9000 }).map((n) => Buffer.alloc(n, n & 0xff)) }) }).map(({ data, ...i }) => ({ ...i, size: data.length, data: { kind: "bytes" as const, bytes: data } })) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("symlink" as const), ...attrs, target: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b.map((x) => x || 1))) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom("chr" as const, "blk" as const), ...attrs, rdevMajor: fc.nat({ max: 4095 }), rdevMinor: fc.nat({ max: 0xfffff }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("fifo" as const), ...attrs }) },
    { weight: 2, arbitrary: tie("dir") },
  ),
  dir: fc.record({ ...attrs, entries: fc.array(fc.tuple(name, tie("node")), { maxLength: 6 }) }).map(({ entries, ...a }) => ({
    ...a,
    kind: "dir" as const,
    entries: sortEntries([...new Map(entries.map(([n, i]) => [n, { name: Buffer.from(n, "latin1"), inode: i }])).values()]),
  })),
}));

/** A root directory, sometimes with many entries (directories over several blocks) and a hardlinked file. */
const rootOf = (maxExtra: number) => fc.tuple(tree.dir, fc.nat({ max: maxExtra }), fc.boolean()).map(([root, extra, link]) => {
  const entries = [...root.entries!];
  for (let i = 0; i < extra; i++) entries.push({ name: Buffer.from(`many-${i}-${"x".repeat(i % 40)}`), inode: { kind: "fifo", perm: 0o644, uid: 0, gid: 0, mtimeSec: 1_700_000_000, mtimeNsec: 0, xattrs: [], size: 0 } });
  const f = entries.find((e) => e.inode.kind === "file");
  if (link && f) entries.push({ name: Buffer.from("hardlink-zz"), inode: f.inode });
  const names = new Set<string>();
  return { ...root, entries: sortEntries(entries.filter((e) => !names.has(e.name.toString("latin1")) && names.add(e.name.toString("latin1")))) } as Inode;
});
const rootArb = rootOf(150);

let seq = 0;
async function image(root: Inode): Promise<Buffer> {
  const out = join(tmp, `i${seq++}.erofs`);
  await writeErofs(root, out, { mode: "full" });
  const b = readFileSync(out);
  rmSync(out);
  return b;
}

/** Every inode reachable from the root, each read completely (bounded: a damaged image may loop). */
function walkImage(img: ErofsImage): number {
  const seen = new Set<number>();
  const queue = [img.sb.rootNid];
  while (queue.length && seen.size < 2000) {
    const nid = queue.shift()!;
    if (seen.has(nid)) continue;
    seen.add(nid);
    const ino: RawInode = img.inode(nid);
    img.xattrs(ino);
    const type = ino.mode & S_IFMT;
    if (type === MODE_TYPE.dir) for (const d of img.dirBlocks(ino).flat()) { if (d.name.toString() !== "." && d.name.toString() !== "..") queue.push(d.nid); }
    // Holes read as zeros, so a damaged size may ask for up to MAX_DATA bytes of them: read what is
    // cheap, and check that what is too big is refused.
    else if ((type === MODE_TYPE.file || type === MODE_TYPE.symlink) && (ino.size <= 1 << 20 || ino.size > MAX_DATA)) img.data(ino);
  }
  return seen.size;
}

function expectSame(img: ErofsImage, root: Inode): void {
  for (const [path, m] of walk(root)) {
    const ino = img.lookup(path);
    const where = path.toString("latin1") || "/";
    expect(ino.mode, where).toBe(MODE_TYPE[m.kind] | m.perm);
    expect([ino.uid, ino.gid, ino.mtimeSec, ino.mtimeNsec], where).toEqual([m.uid, m.gid, m.mtimeSec, m.mtimeNsec]);
    const xs = img.xattrs(ino).map((x) => `${x.name.toString("latin1")}=${x.value.toString("hex")}`).sort();
    expect(xs, where).toEqual(m.xattrs.map((x) => `${x.name.toString("latin1")}=${x.value.toString("hex")}`).sort());
    if (m.kind === "file") expect(img.data(ino).equals(Buffer.from((m.data as { bytes: Uint8Array }).bytes)), where).toBe(true);
    if (m.kind === "symlink") expect(img.data(ino).equals(m.target!), where).toBe(true);
    if (m.kind === "chr" || m.kind === "blk") expect(ino.iu, where).toBe(encodeRdev(m.rdevMajor!, m.rdevMinor!));
    if (m.kind === "dir") expect(img.dirBlocks(ino).flat().map((d) => d.name.toString("latin1")).sort()).toEqual([".", "..", ...m.entries!.map((e) => e.name.toString("latin1"))].sort());
  }
}

describe("EROFS reader fuzz", () => {
  // Each case writes an image file; the reader's share of the work is fuzzed at full count below.
  const roundTrips = Math.max(50, RUNS / 100);
  it(`images of random trees read back exactly (${Math.round(roundTrips)} trees)`, async () => {
    await fc.assert(
      fc.asyncProperty(rootArb, async (root) => {
        const img = new ErofsImage(await image(root), NAME);
        expectSame(img, root);
      }),
      params(roundTrips),
    );
  }, timeoutFor(roundTrips, 50));

  let pool: Buffer[] = [];
  beforeAll(async () => {
    // Small images keep a case cheap (each is copied and walked whole); the round trips above cover big ones.
    for (const root of fc.sample(rootOf(40), { numRuns: 60, seed: SEED ?? 1 })) pool.push(await image(root));
    pool = pool.filter((b) => b.length <= 96 << 10).slice(0, 24);
    expect(pool.length).toBeGreaterThanOrEqual(8);
  }, 120_000);

  it(`damaged images: a complete walk gives values or an error naming the image (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (i, ms) => {
        const bytes = mutate(pool[i % pool.length]!, ms, 4);
        outcome(() => walkImage(new ErofsImage(bytes, NAME)), NAME);
      }),
      params(),
    );
  }, timeoutFor(RUNS, 5));

  it(`arbitrary bytes behind a valid magic number: values or an error naming the image (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 9000 }), fc.boolean(), (raw, magic) => {
        const b = Buffer.from(raw);
        if (magic && b.length >= SUPER_OFFSET + 16) { b.writeUInt32LE(MAGIC, SUPER_OFFSET); b[SUPER_OFFSET + 12] = 12; b.writeUInt32LE(0, SUPER_OFFSET + 40); }
        outcome(() => walkImage(new ErofsImage(b, NAME)), NAME);
      }),
      params(),
    );
  }, timeoutFor(RUNS, 2));
});

describe("regressions", () => {
  it("an empty or short buffer is refused naming the image, not with a RangeError from a Buffer read (found by the arbitrary-bytes property)", () => {
    expectRefused(() => new ErofsImage(Buffer.alloc(0), NAME), /^fuzz\.erofs: 0 bytes, too short for an EROFS superblock$/);
  });

  it("a size field of 0xffffffff is refused, not allocated (4 GiB, 2 s; found by the damaged-image property)", async () => {
    const f: Inode = { kind: "file", perm: 0o644, uid: 0, gid: 0, mtimeSec: 1_700_000_000, mtimeNsec: 0, xattrs: [], size: 3, data: { kind: "bytes", bytes: Buffer.from("abc") } };
    const root: Inode = { kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec: 1_700_000_000, mtimeNsec: 0, xattrs: [], size: 0, entries: [{ name: Buffer.from("f"), inode: f }] };
    const bytes = await image(root);
    const img = new ErofsImage(bytes, NAME);
    const ino = img.lookup("f");
    bytes.writeUInt32LE(0xffffffff, ino.offset + 8);
    expectRefused(() => new ErofsImage(bytes, NAME).data(new ErofsImage(bytes, NAME).lookup("f")), /^fuzz\.erofs: inode \d+: data: size 4294967295 is more than this reader holds in memory/);
  });

  it("a dirent pointing past the image or a directory walked as a file are refused by name", async () => {
    const root: Inode = { kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec: 1_700_000_000, mtimeNsec: 0, xattrs: [], size: 0, entries: [{ name: Buffer.from("p"), inode: { kind: "fifo", perm: 0o644, uid: 0, gid: 0, mtimeSec: 1_700_000_000, mtimeNsec: 0, xattrs: [], size: 0 } }] };
    const img = new ErofsImage(await image(root), NAME);
    expectRefused(() => img.inode(1 << 30), /^fuzz\.erofs: inode 1073741824: bytes \d+\.\.\d+ are beyond the end of the image/);
    expectRefused(() => img.lookup("p/x"), /^fuzz\.erofs: inode \d+: directory: not a directory/);
  });
});
