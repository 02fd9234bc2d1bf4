import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { composefsImage, composefsTree, escapeXattrName, metacopyValue, redirectValue } from "../../runtime/src/composefs/encode.ts";
import { ErofsImage } from "../../runtime/src/erofs/reader.ts";
import { dir, file, special, symlink, xattr } from "../../runtime/src/erofs/sample.ts";
import { writeErofs } from "../../runtime/src/erofs/writer.ts";
import { objectRelPath } from "../../runtime/src/store/layout.ts";
import { NO_XATTRS, type Inode } from "../../runtime/src/tree/model.ts";

const D1 = "ab" + "cd".repeat(31);
const D2 = "0123456789abcdef".repeat(4);
const obj = (digest: string, size: number, over: Partial<Inode> = {}): Inode => ({
  ...file(Buffer.alloc(0)),
  size,
  data: { kind: "object", digest },
  ...over,
});
const names = (i: Inode) => i.xattrs.map((x) => x.name.toString());
const get = (i: Inode, n: string) => i.xattrs.find((x) => x.name.toString() === n)?.value;
const child = (i: Inode, n: string) => i.entries!.find((e) => e.name.toString() === n)!.inode;

describe("composefs encoding", () => {
  it("encodes overlayfs' struct ovl_metacopy with a sha256 digest", () => {
    const v = metacopyValue(D1);
    expect(v.length).toBe(36);
    expect([...v.subarray(0, 4)]).toEqual([0, 36, 0, 1]);
    expect(v.subarray(4).toString("hex")).toBe(D1);
  });

  it("redirects to objects/ab/cdef… relative to the data-only lower", () => {
    expect(redirectValue(D1).toString()).toBe(`/ab/${"cd".repeat(31)}`);
    expect(redirectValue(D1).length).toBe(66);
    for (const d of [D1, D2, "f".repeat(64)]) expect(redirectValue(d).toString()).toBe(`/${objectRelPath(d)}`);
  });

  it("adds redirect and metacopy to non-empty files only, sorted among the file's own xattrs", () => {
    const root = dir([
      ["f", obj(D1, 10, { xattrs: [xattr("user.a", "1"), xattr("user.z", "2")] })],
      ["empty", obj(D2, 0)],
      ["l", symlink("f")],
    ]);
    const out = composefsTree(root);
    const f = child(out, "f");
    expect(names(f)).toEqual(["trusted.overlay.metacopy", "trusted.overlay.redirect", "user.a", "user.z"]);
    expect(get(f, "trusted.overlay.redirect")!.toString()).toBe(`/ab/${"cd".repeat(31)}`);
    expect(get(f, "trusted.overlay.metacopy")!.equals(metacopyValue(D1))).toBe(true);
    expect(f.size).toBe(10);
    expect(child(out, "empty").xattrs).toEqual([]);
    expect(child(out, "l").xattrs).toEqual([]);
  });

  it("escapes the tree's own trusted.overlay.* xattrs and leaves others alone", () => {
    expect(escapeXattrName(Buffer.from("trusted.overlay.opaque")).toString()).toBe("trusted.overlay.overlay.opaque");
    expect(escapeXattrName(Buffer.from("trusted.overlay.overlay.x")).toString()).toBe("trusted.overlay.overlay.overlay.x");
    expect(escapeXattrName(Buffer.from("trusted.overlayx")).toString()).toBe("trusted.overlayx");
    expect(escapeXattrName(Buffer.from("user.overlay.opaque")).toString()).toBe("user.overlay.opaque");
    const out = composefsTree(dir([["d", dir([], { xattrs: [xattr("trusted.overlay.opaque", "y"), xattr("trusted.foo", "1")] })]]));
    expect(names(child(out, "d"))).toEqual(["trusted.foo", "trusted.overlay.overlay.opaque"]);
  });

  it("turns 0:0 character devices into escaped whiteouts and marks their directory", () => {
    const root = dir([["d", dir([["wh", special("chr", 0, 0, { perm: 0o600 })], ["null", special("chr", 1, 3)]])]]);
    const out = composefsTree(root);
    const d = child(out, "d");
    const wh = child(d, "wh");
    expect(wh.kind).toBe("file");
    expect(wh.size).toBe(0);
    expect(wh.perm).toBe(0o600);
    expect(names(wh)).toEqual(["trusted.overlay.overlay.whiteout", "user.overlay.whiteout"]);
    expect(child(d, "null").kind).toBe("chr");
    expect(names(d)).toEqual([
      "trusted.overlay.overlay.opaque",
      "trusted.overlay.overlay.whiteouts",
      "user.overlay.opaque",
      "user.overlay.whiteouts",
    ]);
    expect(get(d, "trusted.overlay.overlay.opaque")!.toString()).toBe("x");
    expect(names(out)).toEqual([]);
  });

  it("does not mutate its input and keeps hardlinks shared", () => {
    const hard = obj(D1, 5, { xattrs: [xattr("trusted.overlay.x", "1")] });
    const root = dir([["a", hard], ["b", hard], ["w", special("chr", 0, 0)]]);
    const before = JSON.stringify(root);
    const out = composefsTree(root);
    expect(JSON.stringify(root)).toBe(before);
    expect(child(out, "a")).toBe(child(out, "b"));
    expect(child(out, "a")).not.toBe(hard);
    expect(child(root, "w").kind).toBe("chr");
  });

  it("in place (staging), gives the same tree and the same image bytes as the copying conversion", async () => {
    const make = () => {
      const hard = obj(D1, 5, { xattrs: [xattr("trusted.overlay.x", "1"), xattr("user.a", "2")] });
      return dir([
        ["a", hard], ["b", hard], ["e", obj(D2, 0)],
        ["d", dir([["wh", special("chr", 0, 0)], ["f", obj(D2, 9)], ["l", symlink("../a")]], { xattrs: [xattr("trusted.overlay.opaque", "y")] })],
      ]);
    };
    const copied = composefsTree(make());
    const input = make();
    const inPlace = composefsTree(input, { inPlace: true });
    expect(inPlace).toBe(input);
    expect(child(inPlace, "a")).toBe(child(inPlace, "b"));
    expect(JSON.stringify(inPlace)).toBe(JSON.stringify(copied));
    const tmp = mkdtempSync(join(tmpdir(), "composefs-inplace-"));
    try {
      await writeErofs(copied, join(tmp, "copied"), { mode: "metadata" });
      await writeErofs(inPlace, join(tmp, "in-place"), { mode: "metadata" });
      expect(readFileSync(join(tmp, "in-place")).equals(readFileSync(join(tmp, "copied")))).toBe(true);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("staging's form (redirect and metacopy asked for by the writer, one list reused) writes the same image", async () => {
    // Same content in files that are not hardlinks: their redirect and metacopy become shared
    // xattrs, which the writer keeps (and so must copy out of the reused list).
    const make = () => {
      const hard = obj(D1, 5, { xattrs: [xattr("trusted.overlay.x", "1"), xattr("user.a", "2")] });
      const dup = Array.from({ length: 4 }, (_, i): [string, Inode] => [`dup${i}`, obj(D2, 9)]);
      const unique = Array.from({ length: 6 }, (_, i): [string, Inode] => [`u${i}`, obj(i.toString(16).repeat(64), 100 + i)]);
      return dir([
        ["a", hard], ["b", hard], ["e", obj(D2, 0)], ["s", obj(D1, 7, { xattrs: [xattr("user.z", "z"), xattr("security.selinux", "x")] })],
        ["d", dir([["wh", special("chr", 0, 0)], ["f", obj(D2, 9)], ["l", symlink("../a")], ...dup, ...unique], { xattrs: [xattr("trusted.overlay.opaque", "y")] })],
      ]);
    };
    const tmp = mkdtempSync(join(tmpdir(), "composefs-lazy-"));
    try {
      await writeErofs(composefsTree(make()), join(tmp, "tree"), { mode: "metadata" });
      const input = make();
      const cfs = composefsImage(input);
      expect(cfs.root).toBe(input);
      // The tree itself keeps no redirect or metacopy.
      expect(names(child(child(cfs.root, "d"), "f"))).toEqual([]);
      expect(names(child(cfs.root, "a"))).toEqual(["trusted.overlay.overlay.x", "user.a"]);
      expect(cfs.xattrsOf(child(child(cfs.root, "d"), "f")).map((x) => x.name.toString())).toEqual(["trusted.overlay.metacopy", "trusted.overlay.redirect"]);
      await writeErofs(cfs.root, join(tmp, "lazy"), { mode: "metadata", xattrsOf: cfs.xattrsOf });
      const lazy = readFileSync(join(tmp, "lazy"));
      expect(lazy.equals(readFileSync(join(tmp, "tree")))).toBe(true);
      const img = new ErofsImage(lazy);
      const redirect = (path: string) => img.xattrs(img.lookup(path)).find((x) => x.name.toString() === "trusted.overlay.redirect")!;
      expect(redirect("/d/dup3").value.toString()).toBe(`/${objectRelPath(D2)}`);
      expect(redirect("/d/dup3").shared).toBe(true);
      expect(redirect("/d/u5").value.toString()).toBe(`/${objectRelPath("5".repeat(64))}`);
      expect(redirect("/d/u5").shared).toBe(false);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("in place, leaves the shared empty xattr list (what the scanner gives inodes without xattrs) empty", () => {
    const bare = (i: Inode): Inode => Object.assign(i, { xattrs: NO_XATTRS });
    const root = bare(dir([
      ["d", bare(dir([["wh", bare(special("chr", 0, 0))], ["f", bare(obj(D1, 3))]]))],
      ["e", bare(obj(D2, 0))],
    ]));
    const out = composefsTree(root, { inPlace: true });
    expect(NO_XATTRS).toHaveLength(0);
    expect(Object.isFrozen(NO_XATTRS)).toBe(true);
    const d = child(out, "d");
    expect(d.xattrs.map((x) => x.name.toString())).toContain("trusted.overlay.overlay.opaque");
    expect(child(d, "f").xattrs.map((x) => x.name.toString())).toEqual(["trusted.overlay.metacopy", "trusted.overlay.redirect"]);
    expect(child(d, "wh").xattrs.map((x) => x.name.toString())).toContain("trusted.overlay.overlay.whiteout");
    expect(child(out, "e").xattrs).toBe(NO_XATTRS);
  });

  it("refuses non-empty files without an object digest", () => {
    expect(() => composefsTree(dir([["f", file(Buffer.from("data"))]]))).toThrow(/object digest/);
    expect(() => composefsTree(dir([["f", obj("xyz", 3)]]))).toThrow(/object digest/);
  });

  describe("as an EROFS image", () => {
    const tmp = mkdtempSync(join(tmpdir(), "composefs-unit-"));
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    it("carries the overlay xattrs and the real sizes, with no data blocks", async () => {
      const entries: [string, Inode][] = [];
      for (let i = 0; i < 200; i++) entries.push([`f${i}`, obj(D2, 1000 + i * 4096)]);
      const root = composefsTree(dir([["d", dir(entries)], ["big", obj(D1, 6 * 2 ** 30)]]));
      const out = join(tmp, "c.erofs");
      await writeErofs(root, out, { mode: "metadata" });
      const img = new ErofsImage(readFileSync(out));
      const f = img.lookup("d/f7");
      expect(f.size).toBe(1000 + 7 * 4096);
      const xs = img.xattrs(f);
      expect(xs.map((x) => x.name.toString())).toEqual(["trusted.overlay.metacopy", "trusted.overlay.redirect"]);
      expect(xs[1]!.value.toString()).toBe("/01/" + D2.slice(2));
      expect(img.lookup("big").size).toBe(6 * 2 ** 30);
      // the inodes, xattrs and chunk maps of 201 files take a few blocks, not one per file
      expect(img.sb.blocks).toBeLessThan(12);
      // the identical metacopy/redirect pair of the 200 files is stored once, shared
      expect(xs.every((x) => x.shared)).toBe(true);
    });
  });
});
