import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { planDir } from "../../runtime/src/erofs/dirent.ts";
import { BLOCK_SIZE, FILE_TYPE, INCOMPAT_CHUNKED_FILE, MAGIC, MODE_TYPE, NULL_ADDR } from "../../runtime/src/erofs/format.ts";
import { encodeRdev } from "../../runtime/src/erofs/inode.ts";
import { ErofsImage, type RawInode } from "../../runtime/src/erofs/reader.ts";
import { BUILD_MTIME, dir, file, noise, sampleTree, special, symlink, xattr } from "../../runtime/src/erofs/sample.ts";
import { writeErofs, type ErofsWriteOptions } from "../../runtime/src/erofs/writer.ts";
import { encodeXattrEntry } from "../../runtime/src/erofs/xattr.ts";
import { walk, type Inode } from "../../runtime/src/tree/model.ts";

const tmp = mkdtempSync(join(tmpdir(), "erofs-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;

async function build(root: Inode, mode: ErofsWriteOptions["mode"] = "metadata"): Promise<{ bytes: Buffer; img: ErofsImage }> {
  const out = join(tmp, `img-${seq++}.erofs`);
  const r = await writeErofs(root, out, { mode });
  const bytes = readFileSync(out);
  expect(bytes.length).toBe(r.bytes);
  return { bytes, img: new ErofsImage(bytes) };
}

/** Deep copy with every entry and xattr list reversed: same tree, different insertion order. */
function reversed(i: Inode, seen = new Map<Inode, Inode>()): Inode {
  const hit = seen.get(i);
  if (hit) return hit;
  const c: Inode = { ...i, xattrs: [...i.xattrs].reverse() };
  seen.set(i, c);
  if (i.entries) c.entries = [...i.entries].reverse().map((e) => ({ name: e.name, inode: reversed(e.inode, seen) }));
  return c;
}

function linkCounts(root: Inode): Map<Inode, number> {
  const m = new Map<Inode, number>();
  for (const [, i] of walk(root)) {
    if (i.kind === "dir") m.set(i, 2 + (i.entries ?? []).filter((e) => e.inode.kind === "dir").length);
    else m.set(i, (m.get(i) ?? 0) + 1);
  }
  return m;
}

/** Checks every path of the model against the image, attribute by attribute. */
function expectSameTree(img: ErofsImage, root: Inode, withData: boolean): void {
  const links = linkCounts(root);
  const seenFiles = new Map<Inode, number>();
  for (const [path, model] of walk(root)) {
    const ino: RawInode = img.lookup(path);
    const where = path.toString("latin1") || "/";
    expect(ino.mode, where).toBe(MODE_TYPE[model.kind] | model.perm);
    expect([ino.uid, ino.gid], where).toEqual([model.uid, model.gid]);
    expect([ino.mtimeSec, ino.mtimeNsec], where).toEqual([model.mtimeSec, model.mtimeNsec]);
    expect(ino.nlink, where).toBe(links.get(model));
    const xs = img.xattrs(ino).map((x) => [x.name.toString("latin1"), x.value.toString("hex")]).sort();
    const want = model.xattrs.map((x) => [x.name.toString("latin1"), x.value.toString("hex")]).sort();
    expect(xs, where).toEqual(want);
    if (model.kind === "file") {
      expect(ino.size, where).toBe(model.size);
      const prev = seenFiles.get(model);
      if (prev !== undefined) expect(ino.nid, `${where} is a hardlink`).toBe(prev);
      seenFiles.set(model, ino.nid);
      if (withData && model.data?.kind === "bytes") expect(img.data(ino).equals(Buffer.from(model.data.bytes)), where).toBe(true);
    }
    if (model.kind === "symlink") expect(img.data(ino).equals(model.target!), where).toBe(true);
    if (model.kind === "chr" || model.kind === "blk") expect(ino.iu, where).toBe(encodeRdev(model.rdevMajor!, model.rdevMinor!));
    if (model.kind === "dir") {
      const names = img.dirBlocks(ino).flat().map((d) => d.name.toString("latin1"));
      const want = [".", "..", ...(model.entries ?? []).map((e) => e.name.toString("latin1"))];
      expect(new Set(names), where).toEqual(new Set(want));
      expect(names.length, where).toBe(want.length);
    }
  }
}

describe("erofs writer", () => {
  it("is deterministic: the same tree gives the same bytes, whatever the insertion order", async () => {
    for (const mode of ["metadata", "full"] as const) {
      const a = await build(sampleTree(), mode);
      const b = await build(sampleTree(), mode);
      const c = await build(reversed(sampleTree()), mode);
      expect(a.bytes.equals(b.bytes), mode).toBe(true);
      expect(a.bytes.equals(c.bytes), mode).toBe(true);
    }
  });

  it("gives the same bytes on every machine and runtime (pinned digests)", async () => {
    // These change only with a deliberate format change: an image digest pinned in a boot entry
    // must be computable again from the same tree anywhere (Node and Bun give the same bytes).
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    expect(sha((await build(sampleTree(), "metadata")).bytes)).toBe("806c2b3876be56f38ef38269267a701ae21870f1339e48c5e256decd2ba36dc6");
    expect(sha((await build(sampleTree(), "full")).bytes)).toBe("183454a2bbbd9874097e2deb67c5f1d3e10b0fbf8478d67c9788931ba283e391");
  });

  it("writes a superblock with fixed, tree-derived fields", async () => {
    const { bytes, img } = await build(sampleTree());
    expect(bytes.readUInt32LE(1024)).toBe(MAGIC);
    expect(img.sb.blkszbits).toBe(12);
    expect(img.sb.uuid.equals(Buffer.alloc(16))).toBe(true);
    expect(bytes.subarray(1024 + 64, 1024 + 80).equals(Buffer.alloc(16))).toBe(true); // volume name
    expect(img.sb.featureCompat).toBe(0); // no checksum, no host-dependent bits
    expect([img.sb.buildTimeSec, img.sb.buildTimeNsec]).toEqual([BUILD_MTIME.mtimeSec, BUILD_MTIME.mtimeNsec]);
    expect(img.sb.blocks * BLOCK_SIZE).toBe(bytes.length);
    expect(img.sb.inos).toBe(new Set([...walk(sampleTree())].map(([, i]) => i)).size); // hardlinks counted once
    expect(img.sb.featureIncompat & INCOMPAT_CHUNKED_FILE).toBe(INCOMPAT_CHUNKED_FILE);
    expect(bytes.subarray(0, 1024).equals(Buffer.alloc(1024))).toBe(true);
    const root = img.inode(img.sb.rootNid);
    expect(root.mode).toBe(MODE_TYPE.dir | 0o755);
    expect(root.nlink).toBe(2 + 3); // ".", its entry in the parent, and tmp, sub, big-dir
  });

  it("takes the most common mtime as build time and uses compact inodes for it", async () => {
    const t = { mtimeSec: 1_234_567_890, mtimeNsec: 42 };
    const root = dir([
      ["a", file(Buffer.from("a"), t)],
      ["b", file(Buffer.from("b"), t)],
      ["c", file(Buffer.from("c"))],
      ["big", file(Buffer.from("d"), { ...t, uid: 70_000 })],
    ], t);
    const { img } = await build(root);
    expect([img.sb.buildTimeSec, img.sb.buildTimeNsec]).toEqual([t.mtimeSec, t.mtimeNsec]);
    expect(img.lookup("a").extended).toBe(false);
    expect(img.lookup("c").extended).toBe(true);
    expect(img.lookup("big").extended).toBe(true);
    expect([img.lookup("c").mtimeSec, img.lookup("c").mtimeNsec]).toEqual([BUILD_MTIME.mtimeSec, 0]);
  });

  it("stores times before 1970: a negative build time for compact inodes, negative 64-bit seconds in extended ones", async () => {
    const half = { mtimeSec: -1, mtimeNsec: 500_000_000 };
    const root = dir([
      ["a", file(Buffer.from("a"), half)],
      ["b", file(Buffer.from("b"), half)],
      ["ns", file(Buffer.from("c"), { mtimeSec: -1, mtimeNsec: 123 })],
      ["far", file(Buffer.from("d"), { mtimeSec: -3_000_000_000, mtimeNsec: 250_000_000 })],
      ["epoch", file(Buffer.from("e"), { mtimeSec: 0, mtimeNsec: 0 })],
    ], half);
    const { bytes, img } = await build(root);
    expect([img.sb.buildTimeSec, img.sb.buildTimeNsec]).toEqual([-1, 500_000_000]);
    // Two's complement on disk, as the kernel reads it (le64 into a signed time64_t).
    expect(bytes.readBigInt64LE(1024 + 24)).toBe(-1n);
    expect(img.lookup("a").extended).toBe(false);
    const got = (p: string) => { const i = img.lookup(p); return [i.mtimeSec, i.mtimeNsec]; };
    expect(got("a")).toEqual([-1, 500_000_000]);
    expect(got("ns")).toEqual([-1, 123]);
    expect(got("far")).toEqual([-3_000_000_000, 250_000_000]);
    expect(got("epoch")).toEqual([0, 0]);
    await expect(writeErofs(dir([["x", file(Buffer.from("x"), { mtimeSec: -1, mtimeNsec: -5 })]]), join(tmp, "bad.erofs"), { mode: "metadata" })).rejects.toThrow(/bad mtime nsec -5/);
  });

  it("round-trips every kind of node in metadata mode (no data blocks for files)", async () => {
    const root = sampleTree();
    const { img } = await build(root, "metadata");
    expectSameTree(img, root, false);
    const f = img.lookup("noise-100k");
    expect(f.layout).toBe(4);
    expect(f.iu & 0x1f).toBe(17 - 12); // one chunk of 2^17 covering 100000 bytes
    expect(img.img.readUInt32LE(f.offset + f.headerSize)).toBe(NULL_ADDR);
  });

  it("round-trips every kind of node and all contents in full mode", async () => {
    const root = sampleTree();
    const { img } = await build(root, "full");
    expectSameTree(img, root, true);
    expect(img.lookup("hello.txt").layout).toBe(2); // tail-packed after the inode
    expect(img.lookup("multi-block").layout).toBe(2);
    expect(img.lookup("block-exact").layout).toBe(0);
    const zeros = img.lookup("zeros-2M");
    expect(zeros.layout).toBe(4); // holes only
    expect(img.data(zeros).equals(Buffer.alloc(2 << 20))).toBe(true);
  });

  it("stores sizes beyond 4 GiB in extended inodes with null chunks", async () => {
    const size = 5 * 2 ** 30 + 7;
    const root = dir([["huge", { ...file(Buffer.alloc(0)), size, data: { kind: "object", digest: "ab".repeat(32) } }]]);
    const { bytes, img } = await build(root, "metadata");
    const f = img.lookup("huge");
    expect(f.extended).toBe(true);
    expect(f.size).toBe(size);
    expect(f.layout).toBe(4);
    expect(bytes.length).toBe(BLOCK_SIZE);
  });

  it("sorts dirents across several blocks, '.' and '..' included, by raw bytes", async () => {
    const entries: [string | Buffer, Inode][] = [];
    for (let i = 0; i < 2000; i++) entries.push([`f${(i * 7919) % 2000}-${"y".repeat(i % 30)}`, file(Buffer.alloc(0))]);
    entries.push(["!", file(Buffer.alloc(0))], ["-", special("fifo")], [Buffer.from([0xff]), symlink("x")], ["sub", dir([])]);
    entries.push([".#lock", file(Buffer.alloc(0))], [".-", file(Buffer.alloc(0))], ["...", file(Buffer.alloc(0))], [".a", file(Buffer.alloc(0))]);
    const root = dir(entries);
    const { img } = await build(root);
    const blocks = img.dirBlocks(img.inode(img.sb.rootNid));
    expect(blocks.length).toBeGreaterThan(3);
    const all = blocks.flat();
    const sorted = [...all].sort((a, b) => Buffer.compare(a.name, b.name));
    expect(all.map((d) => d.name.toString("latin1"))).toEqual(sorted.map((d) => d.name.toString("latin1")));
    expect(all.slice(0, 8).map((d) => d.name.toString())).toEqual(["!", "-", ".", ".#lock", ".-", "..", "...", ".a"]);
    expect(all.at(-1)!.name).toEqual(Buffer.from([0xff]));
    expect(all.find((d) => d.name.toString() === "..")!.nid).toBe(img.sb.rootNid);
    const type = (n: string) => all.find((d) => d.name.toString("latin1") === n)!.type;
    expect([type("!"), type("-"), type("sub"), type("\xff"), type(".")]).toEqual([FILE_TYPE.file, FILE_TYPE.fifo, FILE_TYPE.dir, FILE_TYPE.symlink, FILE_TYPE.dir]);
    const root2 = img.inode(img.sb.rootNid);
    expect(root2.size).toBe(planDir(sorted.map((d) => d.name)).size);
    for (const b of blocks) expect(12 * b.length + b.reduce((s, d) => s + d.name.length, 0)).toBeLessThanOrEqual(BLOCK_SIZE);
  });

  it("encodes xattr entries with short prefixes and 4-byte padding", () => {
    expect([...encodeXattrEntry(xattr("user.foo", "bar"))]).toEqual([3, 1, 3, 0, ...Buffer.from("foobar"), 0, 0]);
    expect([...encodeXattrEntry(xattr("trusted.overlay.redirect", "/ab/cd"))].slice(0, 4)).toEqual([16, 4, 6, 0]);
    expect([...encodeXattrEntry(xattr("security.capability", Buffer.alloc(20)))].slice(0, 4)).toEqual([10, 6, 20, 0]);
    expect([...encodeXattrEntry(xattr("system.posix_acl_access", Buffer.alloc(4)))].slice(0, 4)).toEqual([0, 2, 4, 0]);
    expect([...encodeXattrEntry(xattr("system.posix_acl_default", Buffer.alloc(4)))].slice(0, 4)).toEqual([0, 3, 4, 0]);
    expect(encodeXattrEntry(xattr("user.a", "")).length).toBe(8);
    expect(() => encodeXattrEntry(xattr("system.foo", "x"))).toThrow(/namespace/);
    expect(() => encodeXattrEntry(xattr("user.", "x"))).toThrow(/namespace/);
  });

  it("shares xattrs repeated across inodes and keeps unique ones inline", async () => {
    const label = xattr("security.selinux", "system_u:object_r:usr_t:s0");
    const entries: [string, Inode][] = [];
    for (let i = 0; i < 10; i++) entries.push([`f${i}`, file(Buffer.from(`${i}`), { xattrs: [label, xattr("user.id", `${i}`)] })]);
    const { img } = await build(dir(entries));
    expect(img.sb.xattrBlkaddr).toBeGreaterThan(0);
    for (let i = 0; i < 10; i++) {
      const xs = img.xattrs(img.lookup(`f${i}`));
      expect(xs.map((x) => [x.name.toString(), x.value.toString(), x.shared])).toEqual([
        ["security.selinux", "system_u:object_r:usr_t:s0", true],
        ["user.id", `${i}`, false],
      ]);
    }
  });

  it("tells repeated from unique xattrs among thousands (the hash counts grow past their first table)", async () => {
    // 6,000 distinct values, then a second inode for every 7th of them: only those are shared.
    const entries: [string, Inode][] = [];
    const value = (i: number) => `v${i}-${"x".repeat(40)}`;
    for (let i = 0; i < 6000; i++) entries.push([`f${String(i).padStart(5, "0")}`, file(Buffer.alloc(0), { xattrs: [xattr("user.v", value(i))] })]);
    for (let i = 0; i < 6000; i += 7) entries.push([`g${String(i).padStart(5, "0")}`, file(Buffer.alloc(0), { xattrs: [xattr("user.v", value(i))] })]);
    const { img } = await build(dir(entries));
    for (const i of [0, 1, 6, 7, 2048, 4095, 5999]) {
      const xs = img.xattrs(img.lookup(`f${String(i).padStart(5, "0")}`));
      expect(xs.map((x) => [x.value.toString(), x.shared])).toEqual([[value(i), i % 7 === 0]]);
    }
  });

  it("inlines small directories and symlinks next to their inode", async () => {
    const { bytes, img } = await build(dir([["d", dir([["x", file(Buffer.alloc(0))]])], ["l", symlink("target")]]));
    expect(img.lookup("d").layout).toBe(2);
    expect(img.lookup("l").layout).toBe(2);
    expect(img.lookup("").layout).toBe(2);
    expect(bytes.length).toBe(BLOCK_SIZE); // everything fits in the superblock's block
  });

  it("fills the gaps that inline tails leave at block ends with later inodes", async () => {
    const entries: [string, Inode][] = [];
    // Two 2100-byte tails never share a block; each leaves ~1960 bytes that a 1500-byte tail fits.
    for (let i = 0; i < 200; i++) entries.push([`a${String(i).padStart(3, "0")}`, file(noise(2100, i + 1))]);
    for (let i = 0; i < 200; i++) entries.push([`b${String(i).padStart(3, "0")}`, file(noise(1500, i + 1000))]);
    // Inodes without xattrs placed into gaps, right before inodes written earlier.
    for (let i = 0; i < 200; i++) entries.push([`c${String(i).padStart(3, "0")}`, special("fifo", 0, 0, { perm: 0o640 })]);
    const root = dir(entries);
    const { img } = await build(root, "full");
    expect(img.sb.blocks).toBeLessThanOrEqual(205);
    for (const [name, inode] of entries) {
      const f = img.lookup(name);
      expect(f.mode, name).toBe(MODE_TYPE[inode.kind] | inode.perm);
      if (inode.kind !== "file") continue;
      expect(f.layout).toBe(2);
      expect(Math.floor(f.offset / BLOCK_SIZE)).toBe(Math.floor((f.offset + f.headerSize + f.size - 1) / BLOCK_SIZE));
      expect(img.data(f).equals(Buffer.from((inode.data as { bytes: Uint8Array }).bytes))).toBe(true);
    }
  });

  it("writes a multi-megabyte image, its gaps filled far behind the last inode, to pinned bytes", async () => {
    // Inline tails of 100 to 3,000 bytes leave gaps that later inodes fill, far behind the inode
    // written before them; directories of a few hundred entries and long symlink targets take whole
    // blocks. A guard for any change to how the writer lays out or streams a large image (issue 13).
    const big = (): Inode => {
      const dirs: [string, Inode][] = [];
      for (let d = 0; d < 24; d++) {
        const entries: [string, Inode][] = [];
        for (let f = 0; f < 150; f++) {
          const n = d * 150 + f;
          entries.push([`f${String(f).padStart(4, "0")}`, file(noise(100 + ((n * 977) % 2900), n + 1), { xattrs: n % 5 === 0 ? [xattr("user.k", noise(n % 300, n))] : [] })]);
          if (f % 10 === 0) entries.push([`l${f}`, symlink("t/".repeat(200 + (n % 1500)))]);
          if (f % 25 === 0) entries.push([`p${f}`, special("fifo")]);
        }
        dirs.push([`d${String(d).padStart(2, "0")}`, dir(entries)]);
      }
      return dir(dirs);
    };
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    const full = await build(big(), "full");
    const meta = await build(big(), "metadata");
    expect(full.bytes.length).toBeGreaterThan(4 << 20);
    expect(meta.bytes.length).toBeGreaterThan(1 << 20);
    expectSameTree(full.img, big(), true);
    expectSameTree(meta.img, big(), false);
    expect([sha(full.bytes), sha(meta.bytes)]).toEqual(["58dd0073c3c5b0ec7bc9c03128352d79629b397962db175f96077ecec6e2d731", "a8eac511ed89e56a5f305296f203dc3dc3977bd35d9b502f27b59a332d736182"]);
  });

  it("rejects names and trees it cannot represent", async () => {
    const bad = async (name: string | Buffer) => build(dir([[name, file(Buffer.alloc(0))]]));
    await expect(bad("a/b")).rejects.toThrow(/invalid file name/);
    await expect(bad("x".repeat(256))).rejects.toThrow(/invalid file name/);
    await expect(bad("..")).rejects.toThrow(/invalid file name/);
    const d = dir([]);
    await expect(build(dir([["a", d], ["b", d]]))).rejects.toThrow(/linked twice/);
    // A directory inside itself: refused, not walked for ever.
    const loop = dir([]);
    loop.entries!.push({ name: Buffer.from("again"), inode: loop });
    await expect(build(dir([["loop", loop]]))).rejects.toThrow(/linked twice/);
    await expect(build(dir([["a", file(Buffer.alloc(0))], ["a", file(Buffer.alloc(0))]]))).rejects.toThrow(/duplicate/);
    await expect(build(dir([["o", { ...file(Buffer.alloc(0)), size: 10, data: { kind: "object", digest: "ab".repeat(32) } }]]), "full")).rejects.toThrow(/full images need/);
  });

  it("full mode streams large files without changing their bytes", async () => {
    const content = noise(3_000_000, 9);
    const { img } = await build(dir([["f", file(content)]]), "full");
    const f = img.lookup("f");
    expect(f.layout).toBe(2);
    expect(img.data(f).equals(content)).toBe(true);
  });
});
