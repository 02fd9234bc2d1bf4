import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { composefsTree } from "../../runtime/src/composefs/encode.ts";
import { dir, file, special, symlink } from "../../runtime/src/erofs/sample.ts";
import { writeErofs } from "../../runtime/src/erofs/writer.ts";
import { composefsDigests, knownDigests } from "../../runtime/src/layer/known-digests.ts";
import type { UpperEntry } from "../../runtime/src/layer/upper.ts";
import type { Inode } from "../../runtime/src/tree/model.ts";

const D = (c: string) => c.repeat(64);
/** A name that is not UTF-8 ("n", then 0xe9): keys are the name's bytes as latin1. */
const NE = Buffer.from([0x6e, 0xe9]);
const obj = (digest: string, size = 7): Inode => ({ ...file(Buffer.alloc(0)), size, data: { kind: "object", digest } });

/** A lower deployment's tree: what its composefs image records. */
async function lowerImage(): Promise<Buffer> {
  const root = dir([
    ["usr", dir([
      ["bin", dir([["bash", obj(D("1"))], ["sh", symlink("bash")], ["hello", obj(D("2"))]])],
      ["lib", dir([["mods", dir([["a.ko", obj(D("3"))], ["b.ko", obj(D("4"))]])], ["x", dir([["y", obj(D("5"))]])]])],
      ["share", dir([["empty", obj(D("6"), 0)], [NE, obj(D("7"))], ["gone", dir([["z", obj(D("8"))]])]])],
    ])],
    ["dev", dir([["null", special("chr", 1, 3)]])],
  ]);
  const tmp = mkdtempSync(join(tmpdir(), "known-digests-"));
  try {
    await writeErofs(composefsTree(root), join(tmp, "img"), { mode: "metadata" });
    return readFileSync(join(tmp, "img"));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

describe("staging a layer: digests known from the lower deployment's composefs image", () => {
  it("reads every non-empty regular file's object digest from the image, names as bytes", async () => {
    const m = composefsDigests(await lowerImage());
    expect(Object.fromEntries(m)).toEqual({
      "usr/bin/bash": D("1"), "usr/bin/hello": D("2"), "usr/lib/mods/a.ko": D("3"), "usr/lib/mods/b.ko": D("4"),
      "usr/lib/x/y": D("5"), [`usr/share/${NE.toString("latin1")}`]: D("7"), "usr/share/gone/z": D("8"),
    });
  });

  it("takes a lower file unless the upper stands at its path or hides a directory above it", async () => {
    const upper: UpperEntry[] = [
      { path: "usr", kind: "dir", inLower: true },
      { path: "usr/bin", kind: "dir", inLower: true },
      { path: "usr/bin/hello", kind: "file", inLower: true },
      { path: "usr/lib", kind: "dir", inLower: true },
      { path: "usr/lib/mods", kind: "dir", inLower: true, opaque: true },
      { path: "usr/lib/mods/a.ko", kind: "file", inLower: true },
      { path: "usr/lib/x", kind: "symlink", inLower: true },
      { path: "usr/share", kind: "dir", inLower: true },
      { path: "usr/share/gone", kind: "whiteout", inLower: true },
    ];
    const known = knownDigests(composefsDigests(await lowerImage()), upper);
    // Untouched, also below a directory the upper only copied up.
    expect(known("usr/bin/bash")).toBe(D("1"));
    expect(known(`usr/share/${NE.toString("latin1")}`)).toBe(D("7"));
    // Replaced by the upper: the upper's file must be read.
    expect(known("usr/bin/hello")).toBeUndefined();
    // An opaque directory hides all the lower had below it, also a file the upper did not recreate.
    expect(known("usr/lib/mods/a.ko")).toBeUndefined();
    expect(known("usr/lib/mods/b.ko")).toBeUndefined();
    // A directory the upper replaced with a symlink, and a removed directory.
    expect(known("usr/lib/x/y")).toBeUndefined();
    expect(known("usr/share/gone/z")).toBeUndefined();
    // Not in the lower (a new file, an empty file): read as usual.
    expect(known("usr/bin/new")).toBeUndefined();
    expect(known("usr/share/empty")).toBeUndefined();
    // Prefixes are whole names: usr/b is not usr/bin.
    expect(knownDigests(new Map([["usr/bin/bash", D("1")]]), [{ path: "usr/b", kind: "whiteout", inLower: true }])("usr/bin/bash")).toBe(D("1"));
  });

  it("refuses what is not an EROFS image", () => {
    expect(() => composefsDigests(Buffer.alloc(4096), "/x/image.cfs")).toThrow(/\/x\/image\.cfs: .*(too short|not an EROFS image)/);
  });
});
