// The shared xattr area's bytes, pinned: the table that chooses and lays out shared entries was
// rewritten to keep numbers instead of strings (issue 13), and an image digest is pinned in boot
// entries, so the same tree must give the same bytes. The digests were taken from the writer
// before that rewrite.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { composefsImage } from "../../runtime/src/composefs/encode.ts";
import { ErofsImage } from "../../runtime/src/erofs/reader.ts";
import { dir, file, xattr } from "../../runtime/src/erofs/sample.ts";
import { writeErofs } from "../../runtime/src/erofs/writer.ts";
import { DigestTable } from "../../runtime/src/tree/object-digests.ts";
import type { Inode } from "../../runtime/src/tree/model.ts";

const tmp = mkdtempSync(join(tmpdir(), "erofs-shared-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const pad = (i: number) => String(i).padStart(4, "0");

/**
 * Repeated and unique entries of many sizes: values near a block's size (the area pads so that no
 * entry straddles a block), an inode with more shared entries than h_shared_count holds (255), and
 * entries repeated exactly twice whose sharing does or does not pay.
 */
function mixedTree(): Inode {
  const entries: [string, Inode][] = [];
  const big = (k: number) => Buffer.alloc(1500 + 300 * (k % 5), 0x41 + k);
  for (let i = 0; i < 60; i++) {
    const xs = [
      xattr("security.selinux", `system_u:object_r:t${i % 3}:s0`),
      xattr("user.big", big(i % 7)),
      xattr("user.once", `unique-${i}`),
      xattr("user.twice", Buffer.alloc(i % 2 === 0 ? 2 : 40, i >> 1)),
    ];
    entries.push([`f${pad(i)}`, file(Buffer.from(`${i}`), { xattrs: xs.sort((a, b) => Buffer.compare(a.name, b.name)) })]);
  }
  const many = Array.from({ length: 300 }, (_, k) => xattr(`user.m${pad(k)}`, `value-${k}`)).sort((a, b) => Buffer.compare(a.name, b.name));
  entries.push(["many-a", file(Buffer.alloc(0), { xattrs: many })]);
  entries.push(["many-b", file(Buffer.alloc(0), { xattrs: many })]);
  return dir(entries);
}

/** A composefs tree where every object is used by three files, as in a tree of copies. */
function copiesTree(table?: DigestTable): Inode {
  const digest = (k: number) => createHash("sha256").update(`object ${k}`).digest("hex");
  const files = (copy: number): [string, Inode][] =>
    Array.from({ length: 200 }, (_, k) => {
      const f = file(Buffer.alloc(0));
      f.size = 1000 + k;
      f.data = table ? table.ref(table.intern(digest(k))) : { kind: "object", digest: digest(k) };
      return [`c${copy}-${pad(k)}`, f];
    });
  return dir([["a", dir(files(0))], ["b", dir(files(1))], ["c", dir(files(2))]]);
}

async function image(root: Inode, xattrsOf?: (i: Inode) => readonly import("../../runtime/src/tree/model.ts").Xattr[]): Promise<Buffer> {
  const out = join(tmp, `img-${seq++}.erofs`);
  await writeErofs(root, out, { mode: "metadata", xattrsOf });
  return readFileSync(out);
}

describe("shared xattrs", () => {
  it("lay out the same bytes as before the table kept numbers (sizes, padding, the 255 cap)", async () => {
    const bytes = await image(mixedTree());
    const img = new ErofsImage(bytes);
    expect(img.sb.xattrBlkaddr).toBeGreaterThan(0);
    const shared = (name: string) => img.xattrs(img.lookup(name)).filter((x) => x.shared).length;
    expect(shared("many-a")).toBe(255);
    expect(shared("f0000")).toBeGreaterThan(0);
    expect(sha(bytes)).toBe("8f9ba33413266d84289d39e06807e1736629fda6bc2fbf5f04a8e5fa537f9ca5");
  });

  it("share a composefs file's redirect and metacopy among its copies, the same bytes from digests as strings or as table numbers", async () => {
    const a = composefsImage(copiesTree());
    const table = new DigestTable();
    const b = composefsImage(copiesTree(table));
    const [x, y] = [await image(a.root, a.xattrsOf), await image(b.root, b.xattrsOf)];
    expect(y.equals(x)).toBe(true);
    const img = new ErofsImage(x);
    const xs = img.xattrs(img.lookup("b/c1-0007"));
    expect(xs.map((e) => [e.name.toString(), e.shared])).toEqual([["trusted.overlay.metacopy", true], ["trusted.overlay.redirect", true]]);
    expect(sha(x)).toBe("ceb09735aa338e5cfcaed53463d0cad5207baf502ddd5cd33f7bfceaefb1e5e6");
  });
});
