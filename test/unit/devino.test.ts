import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEVINO_FILE, DevinoCache, decodeCache } from "../../runtime/src/store/devino.ts";
import { objectLookup } from "../../runtime/src/store/objects.ts";
import { storeLayout } from "../../runtime/src/store/layout.ts";
import type { StatKey } from "../../runtime/src/tree/scan.ts";
import { DigestTable } from "../../runtime/src/tree/object-digests.ts";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "particle-devino-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const key = (ino: number): StatKey => ({ dev: 2049, ino, size: 10, mtimeSec: 1, mtimeNsec: 2, ctimeSec: 3, ctimeNsec: 4 });
const D1 = "a".repeat(64);

describe("the devino cache, binary records indexed by device and inode", () => {
  it("gives back what the last stage remembered, and nothing for a changed stamp", () => {
    const path = join(tmp(), DEVINO_FILE);
    const c = new DevinoCache(path);
    c.remember(key(1), D1, false);
    c.save();
    const again = new DevinoCache(path);
    expect(again.lookup(key(1))).toBe(D1);
    for (const field of ["dev", "ino", "size", "mtimeSec", "mtimeNsec", "ctimeSec", "ctimeNsec"] as const) {
      expect(again.lookup({ ...key(1), [field]: key(1)[field] + 1 })).toBeUndefined();
      expect(again.bare({ ...key(1), [field]: key(1)[field] + 1 })).toBe(false);
    }
    expect(again.lookup(key(2))).toBeUndefined();
  });

  it("says a file is bare only when it is unchanged and had no xattrs", () => {
    const path = join(tmp(), DEVINO_FILE);
    const c = new DevinoCache(path);
    c.remember(key(1), D1, false);
    c.remember(key(2), D1, true);
    // Nothing is known before a save: the file is this stage's, not the last one's.
    expect(c.bare(key(1))).toBe(false);
    c.save();
    const again = new DevinoCache(path);
    expect(again.bare(key(1))).toBe(true);
    expect(again.bare(key(2))).toBe(false);
    expect(again.bare({ ...key(1), ctimeNsec: 5 })).toBe(false);
    expect(again.bare(key(3))).toBe(false);
  });

  it("keeps every file of a large stage (its table grows, inodes collide in the index) and forgets the stage before", () => {
    const path = join(tmp(), DEVINO_FILE);
    const first = new DevinoCache(path);
    first.remember(key(1), D1, false);
    first.save();
    const c = new DevinoCache(path);
    const digest = (i: number) => i.toString(16).padStart(64, "0");
    const k = (i: number): StatKey => ({ ...key(i), dev: i % 3, size: i, mtimeNsec: 999_999_999, ctimeSec: 2 ** 40 });
    for (let i = 2; i < 3002; i++) c.remember(k(i), digest(i), i % 2 === 0);
    // Same inode on another device, and inode numbers that differ only past 2^32.
    c.remember({ ...k(7), dev: 99 }, D1, false);
    c.remember({ ...k(7), ino: 7 + 2 ** 32 }, D1.replace(/a/g, "b"), false);
    c.save();
    const again = new DevinoCache(path);
    for (let i = 2; i < 3002; i++) {
      expect(again.lookup(k(i))).toBe(digest(i));
      expect(again.bare(k(i))).toBe(i % 2 === 1);
    }
    expect(again.lookup({ ...k(7), dev: 99 })).toBe(D1);
    expect(again.lookup({ ...k(7), ino: 7 + 2 ** 32 })).toBe(D1.replace(/a/g, "b"));
    expect(again.lookup(key(1))).toBeUndefined();
  });

  it("forgets the last stage's records when told, and still saves this stage's", () => {
    const path = join(tmp(), DEVINO_FILE);
    const first = new DevinoCache(path);
    first.remember(key(1), D1, false);
    first.remember(key(2), D1, false);
    first.save();
    const c = new DevinoCache(path);
    const hit = c.find(key(1));
    expect(hit).toBeGreaterThanOrEqual(0);
    c.keep(hit);
    c.forgetLast();
    expect(c.find(key(1))).toBe(-1);
    expect(c.bare(key(2))).toBe(false);
    c.remember(key(3), D1.replace(/a/g, "c"), true);
    c.save();
    const again = new DevinoCache(path);
    expect(again.lookup(key(1))).toBe(D1);
    expect(again.lookup(key(2))).toBeUndefined();
    expect(again.lookup(key(3))).toBe(D1.replace(/a/g, "c"));
  });

  it("takes room for the files it is told of, and still grows past it", () => {
    const path = join(tmp(), DEVINO_FILE);
    const c = new DevinoCache(path);
    c.expect(2000);
    const digest = (i: number) => i.toString(16).padStart(64, "0");
    for (let i = 1; i <= 2500; i++) c.remember(key(i), digest(i), false);
    c.save();
    const again = new DevinoCache(path);
    for (let i = 1; i <= 2500; i++) expect(again.lookup(key(i))).toBe(digest(i));
  });

  it("records digests as numbers of the stage's table: no second copy of a digest the table has", () => {
    const path = join(tmp(), DEVINO_FILE);
    const table = new DigestTable();
    const c = new DevinoCache(path, table);
    const n = table.intern("b".repeat(64));
    c.remember(key(1), n, true);
    c.remember(key(2), D1, false);
    expect(table.size).toBe(2);
    expect(() => c.remember(key(3), 2, false)).toThrow(/devino cache: digest number 2 is not in the table/);
    c.save();
    const shared = new DigestTable();
    const next = new DevinoCache(path, shared);
    next.keep(next.find(key(2)));
    next.keep(next.find(key(1)), shared.intern("b".repeat(64)));
    expect([shared.hex(0), shared.hex(1), shared.size]).toEqual([D1, "b".repeat(64), 2]);
    next.save();
    const again = new DevinoCache(path);
    expect(again.lookup(key(1))).toBe("b".repeat(64));
    expect(again.lookup(key(2))).toBe(D1);
    expect(again.bare(key(1))).toBe(false);
  });

  it("carries an unchanged file's record into the next stage as it was, its xattr flag included", () => {
    const path = join(tmp(), DEVINO_FILE);
    const c = new DevinoCache(path);
    c.remember(key(1), D1, false);
    c.remember(key(2), "b".repeat(64), true);
    c.save();
    const next = new DevinoCache(path);
    for (const i of [2, 1]) next.keep(next.find(key(i)));
    expect(next.find(key(3))).toBe(-1);
    next.save();
    const again = new DevinoCache(path);
    expect(again.lookup(key(1))).toBe(D1);
    expect(again.bare(key(1))).toBe(true);
    expect(again.lookup(key(2))).toBe("b".repeat(64));
    expect(again.bare(key(2))).toBe(false);
    expect(readFileSync(path).length).toBe(16 + 2 * 96);
  });

  it("keeps negative times, inode numbers past 2^32 and a digest's every byte", () => {
    const path = join(tmp(), DEVINO_FILE);
    const c = new DevinoCache(path);
    const k = { dev: 66306, ino: 2 ** 40 + 7, size: 0, mtimeSec: -86_400, mtimeNsec: 0, ctimeSec: 1_700_000_000, ctimeNsec: 999_999_999 };
    const d = "0123456789abcdef".repeat(4);
    c.remember(k, d, true);
    c.save();
    expect(readFileSync(path).length).toBe(16 + 96);
    expect(new DevinoCache(path).lookup(k)).toBe(d);
  });

  it("refuses to remember a digest that is not 64 hex digits", () => {
    const c = new DevinoCache(join(tmp(), DEVINO_FILE));
    expect(() => c.remember(key(1), "g".repeat(64), false)).toThrow(/not a sha256 digest/);
    expect(() => c.remember(key(1), D1.slice(2), false)).toThrow(/not a sha256 digest/);
  });

  it("decodes exactly what it encodes, and nothing cut short, lengthened or of another version", () => {
    const path = join(tmp(), DEVINO_FILE);
    const c = new DevinoCache(path);
    for (let i = 1; i < 20; i++) c.remember(key(i), i.toString(16).padStart(64, "0"), i % 2 === 0);
    c.save();
    const bytes = readFileSync(path);
    expect(decodeCache(bytes)!.count).toBe(19);
    // At an odd offset in a larger buffer, as a read can hand it over.
    const odd = Buffer.alloc(bytes.length + 3);
    bytes.copy(odd, 3);
    expect(decodeCache(odd.subarray(3))!.keys).toEqual(decodeCache(bytes)!.keys);
    for (let n = 0; n < bytes.length; n += 7) expect(decodeCache(bytes.subarray(0, n))).toBeUndefined();
    expect(decodeCache(Buffer.concat([bytes, Buffer.alloc(1)]))).toBeUndefined();
    const v4 = Buffer.from(bytes);
    v4[8] = 4;
    expect(decodeCache(v4)).toBeUndefined();
    const other = Buffer.from(bytes);
    other[0] = 0x51;
    expect(decodeCache(other)).toBeUndefined();
  });

  it("starts empty from a damaged file or the old JSON cache, without failing, and removes the JSON cache at its save", () => {
    const dir = tmp();
    const path = join(dir, DEVINO_FILE);
    for (const bytes of [Buffer.from("{not json"), Buffer.from("PDEVINO\0"), Buffer.alloc(0)]) {
      writeFileSync(path, bytes);
      expect(new DevinoCache(path).lookup(key(1))).toBeUndefined();
    }
    const old = join(dir, "devino.json");
    writeFileSync(old, JSON.stringify({ version: 2, entries: { "2049:1": `10:1.2:3.4 ${D1}` } }));
    const c = new DevinoCache(path);
    expect(c.lookup(key(1))).toBeUndefined();
    c.remember(key(1), D1, false);
    c.save();
    expect(existsSync(old)).toBe(false);
    expect(new DevinoCache(path).lookup(key(1))).toBe(D1);
  });
});

describe("objectLookup, one listing of the object store for many questions", () => {
  it("says which digests the store has, as hasObject does", () => {
    const l = storeLayout(tmp());
    mkdirSync(join(l.objects, "ab"), { recursive: true });
    mkdirSync(join(l.objects, "cd"), { recursive: true });
    const have = `ab${"0".repeat(62)}`;
    writeFileSync(join(l.objects, "ab", have.slice(2)), "x");
    const stored = objectLookup(l);
    expect(stored(have)).toBe(true);
    expect(stored(`cd${"0".repeat(62)}`)).toBe(false);
    expect(stored(`ef${"0".repeat(62)}`)).toBe(false);
  });
});
