import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DevinoCache, parseRendered } from "../../runtime/src/store/devino.ts";
import { objectLookup } from "../../runtime/src/store/objects.ts";
import { storeLayout } from "../../runtime/src/store/layout.ts";
import { devinoOf, stampOf, type StatKey } from "../../runtime/src/tree/scan.ts";

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

describe("the devino cache, whose entries are checked when looked up", () => {
  it("gives back what the last stage remembered, and nothing for a changed stamp", () => {
    const path = join(tmp(), "devino.json");
    const c = new DevinoCache(path);
    c.remember(key(1), D1);
    c.save();
    const again = new DevinoCache(path);
    expect(again.lookup(key(1))).toBe(D1);
    expect(again.lookup({ ...key(1), ctimeNsec: 5 })).toBeUndefined();
    expect(again.lookup(key(2))).toBeUndefined();
  });

  it("keeps every file of a large stage (its table grows) and forgets the stage before", () => {
    const path = join(tmp(), "devino.json");
    const first = new DevinoCache(path);
    first.remember(key(1), D1);
    first.save();
    const c = new DevinoCache(path);
    const digest = (i: number) => i.toString(16).padStart(64, "0");
    for (let i = 2; i < 3002; i++) c.remember({ ...key(i), size: i, mtimeNsec: 999_999_999, ctimeSec: 2 ** 40 }, digest(i));
    c.save();
    const again = new DevinoCache(path);
    for (const i of [2, 1025, 3001]) expect(again.lookup({ ...key(i), size: i, mtimeNsec: 999_999_999, ctimeSec: 2 ** 40 })).toBe(digest(i));
    expect(again.lookup(key(1))).toBeUndefined();
  });

  it("writes each entry as devino → \"stamp digest\", negative times included", () => {
    const path = join(tmp(), "devino.json");
    const c = new DevinoCache(path);
    const k = { dev: 66306, ino: 2 ** 40 + 7, size: 0, mtimeSec: -86_400, mtimeNsec: 0, ctimeSec: 1_700_000_000, ctimeNsec: 999_999_999 };
    c.remember(k, D1);
    c.remember(key(9), D1);
    c.save();
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({
      version: 2,
      entries: { [devinoOf(k)]: `${stampOf(k)} ${D1}`, [devinoOf(key(9))]: `${stampOf(key(9))} ${D1}` },
    });
    expect(new DevinoCache(path).lookup(k)).toBe(D1);
  });

  it("ignores a bad entry (a digest that is not hex, a value that is not a string) and keeps the good ones", () => {
    const path = join(tmp(), "devino.json");
    const stamp = "10:1.2:3.4";
    writeFileSync(path, JSON.stringify({
      version: 2,
      entries: { "2049:1": `${stamp} ${D1}`, "2049:2": `${stamp} ${"g".repeat(64)}`, "2049:3": 42, "2049:4": `${stamp} ${D1.slice(1)}` },
    }));
    const c = new DevinoCache(path);
    expect(c.lookup(key(1))).toBe(D1);
    expect(c.lookup(key(2))).toBeUndefined();
    expect(c.lookup(key(3))).toBeUndefined();
    expect(c.lookup(key(4))).toBeUndefined();
  });

  it("reads its own file without JSON.parse, the same entries, and leaves any other text to JSON.parse", () => {
    const path = join(tmp(), "devino.json");
    const c = new DevinoCache(path);
    const k = { dev: 66306, ino: 2 ** 40 + 7, size: 0, mtimeSec: -86_400, mtimeNsec: 0, ctimeSec: 1_700_000_000, ctimeNsec: 999_999_999 };
    c.remember(k, D1);
    for (let i = 1; i < 50; i++) c.remember(key(i), i.toString(16).padStart(64, "0"));
    c.save();
    const bytes = readFileSync(path);
    expect(Object.fromEntries(parseRendered(bytes)!)).toEqual(JSON.parse(bytes.toString()).entries);
    expect(parseRendered(Buffer.from(`{"version":2,"entries":{}}`))).toEqual(new Map());
    const entries = { "2049:1": `10:1.2:3.4 ${D1}` };
    // Valid JSON that render() does not write: whitespace, an escape, a number, trailing bytes, another version.
    for (const text of [
      JSON.stringify({ version: 2, entries }, null, 1),
      `{"version":2,"entries":{"2049:1":"10:1.2:3.4 \\u0061${D1.slice(1)}"}}`,
      `{"version":2,"entries":{"2049:1":42}}`,
      `${JSON.stringify({ version: 2, entries })}\n`,
      JSON.stringify({ version: 3, entries }),
    ]) {
      expect(JSON.parse(text)).toBeTruthy();
      expect(parseRendered(Buffer.from(text))).toBeUndefined();
    }
    // Such a file still loads (through JSON.parse).
    writeFileSync(path, JSON.stringify({ version: 2, entries }, null, 1));
    expect(new DevinoCache(path).lookup({ ...key(1), size: 10, mtimeSec: 1, mtimeNsec: 2, ctimeSec: 3, ctimeNsec: 4 })).toBe(D1);
    // Cut short anywhere, it is not taken as a shorter cache.
    for (let n = 0; n < bytes.length; n += 97) expect(parseRendered(bytes.subarray(0, n))).toBeUndefined();
  });

  it("starts empty from a damaged file or another version, without failing", () => {
    for (const text of ["{not json", JSON.stringify({ version: 1, entries: {} }), JSON.stringify({ version: 2, entries: [] })]) {
      const path = join(tmp(), "devino.json");
      writeFileSync(path, text);
      expect(new DevinoCache(path).lookup(key(1))).toBeUndefined();
    }
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
