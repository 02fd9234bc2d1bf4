// DigestTable: the stage's object digests as bytes, and the ObjectRef files point at.
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { DigestTable } from "../../runtime/src/tree/object-digests.ts";
import { encodeObjectList } from "../../runtime/src/store/deployments.ts";

const hexOf = (i: number): string => createHash("sha256").update(String(i)).digest("hex");

describe("DigestTable", () => {
  it("numbers digests in the order first seen, each once, across growth of its bytes and its index", () => {
    const t = new DigestTable(4);
    const n = 5000;
    for (let i = 0; i < n; i++) expect(t.intern(hexOf(i))).toBe(i);
    for (let i = n - 1; i >= 0; i--) expect(t.intern(hexOf(i))).toBe(i);
    expect(t.size).toBe(n);
    for (let i = 0; i < n; i += 97) expect(t.hex(i)).toBe(hexOf(i));
  });
  it("digests that share their first four bytes (the index's hash) stay apart", () => {
    const t = new DigestTable(16);
    const same = (tail: number) => "00000000" + tail.toString(16).padStart(56, "0");
    for (let i = 0; i < 100; i++) expect(t.intern(same(i))).toBe(i);
    for (let i = 0; i < 100; i++) expect(t.intern(same(i))).toBe(i);
    expect(t.hex(42)).toBe(same(42));
  });
  it("takes digests as bytes too, gives them back as bytes, and keeps its numbers across reserve()", () => {
    const t = new DigestTable(2);
    const raw = Buffer.concat([Buffer.from([9, 9, 9]), Buffer.from(hexOf(7), "hex"), Buffer.from(hexOf(8), "hex")]);
    expect(t.intern(hexOf(8))).toBe(0);
    expect(t.internBytes(raw, 3)).toBe(1);
    expect(t.internBytes(raw, 35)).toBe(0);
    t.reserve(10_000);
    expect(t.intern(hexOf(7))).toBe(1);
    for (let i = 100; i < 3000; i++) expect(t.intern(hexOf(i))).toBe(i - 98);
    const out = Buffer.alloc(70);
    t.copyBytes(1, out, 5);
    expect(out.subarray(5, 37).toString("hex")).toBe(hexOf(7));
    expect(() => t.internBytes(raw, 40)).toThrow(RangeError);
    expect(() => t.copyBytes(t.size, out, 0)).toThrow(RangeError);
  });
  it("refuses what is not 64 lowercase hex digits, naming it; numbers out of range are errors", () => {
    const t = new DigestTable();
    expect(() => t.intern("ab")).toThrow(/not a sha256 digest.*"ab"/);
    expect(() => t.intern(hexOf(1).toUpperCase())).toThrow(/not a sha256 digest/);
    expect(() => t.hex(0)).toThrow(RangeError);
  });
  it("an ObjectRef reads as { kind: \"object\", digest } and serializes as one", () => {
    const t = new DigestTable();
    const r = t.ref(t.intern(hexOf(7)));
    expect(r.kind).toBe("object");
    expect(r.digest).toBe(hexOf(7));
    expect(JSON.parse(JSON.stringify({ data: r }))).toEqual({ data: { kind: "object", digest: hexOf(7) } });
  });
  it("sortedBytes is the object list encodeObjectList writes from strings: sorted by bytes, repeats once", () => {
    const t = new DigestTable();
    const all = Array.from({ length: 3000 }, (_, i) => hexOf(i % 1000));
    // Same leading four bytes, different tails: the order falls to the full comparison.
    all.push("abcdef01" + "f".repeat(56), "abcdef01" + "0".repeat(56), "abcdef01" + "8".repeat(56));
    const ns = all.map((d, i) => (i % 2 ? t.numberOf({ digest: d }) : t.numberOf(t.ref(t.intern(d)))));
    expect(t.sortedBytes(ns).equals(encodeObjectList(all.slice()))).toBe(true);
    expect(t.sortedBytes([]).length).toBe(0);
  });
  it("numberOf reads an ObjectRef of another table by its digest, not its number", () => {
    const a = new DigestTable();
    const b = new DigestTable();
    b.intern(hexOf(1));
    const r = a.ref(a.intern(hexOf(2)));
    expect(b.numberOf(r)).toBe(1);
    expect(b.hex(1)).toBe(hexOf(2));
  });
});
