// Splitting times into seconds + nanoseconds, around the epoch and far from it: every source (the
// directory scanner, PAX records, GNU base-256 tar headers) must give nanoseconds in [0, 1e9).
import { describe, expect, it } from "vitest";
import { lstatSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDecimalSeconds, splitNs } from "../../runtime/src/tree/time.ts";
import { inodeFromStat } from "../../runtime/src/tree/scan.ts";
import { parseNumber } from "../../runtime/src/tar/header.ts";
import { parsePaxTime } from "../../runtime/src/tar/pax.ts";
import { TarReader, type TarEntry } from "../../runtime/src/tar/reader.ts";
import { tarBytes } from "../host/lib/oci-tar.ts";
import { unrepresentableInSquashfs } from "../../runtime/src/store/squashfs-times.ts";
import type { Inode } from "../../runtime/src/tree/model.ts";

// [decimal seconds, nanoseconds since the epoch, seconds, nanoseconds]
const TABLE: [string, bigint, number, number][] = [
  ["-1.000000123", -1_000_000_123n, -2, 999_999_877],
  ["-0.999999877", -999_999_877n, -1, 123],
  ["-1", -1_000_000_000n, -1, 0],
  ["-0.5", -500_000_000n, -1, 500_000_000],
  ["-0.000000001", -1n, -1, 999_999_999],
  ["0", 0n, 0, 0],
  ["-0", 0n, 0, 0],
  ["0.000000001", 1n, 0, 1],
  ["0.5", 500_000_000n, 0, 500_000_000],
  ["1000000000.000000001", 1_000_000_000_000_000_001n, 1_000_000_000, 1],
  ["4294967296.25", 4_294_967_296_250_000_000n, 4_294_967_296, 250_000_000],
  ["-2147483649.75", -2_147_483_649_750_000_000n, -2_147_483_650, 250_000_000],
  ["-62135596800", -62_135_596_800_000_000_000n, -62_135_596_800, 0],
];

describe("time split", () => {
  it.each(TABLE)("%s s", (text, ns, sec, nsec) => {
    expect(splitNs(ns)).toEqual([sec, nsec]);
    expect(parseDecimalSeconds(text)).toEqual([sec, nsec]);
    expect(parsePaxTime(text)).toEqual([sec, nsec]);
  });

  it("drops digits past the ninth, toward zero as Go's archive/tar does; refuses what is not a number", () => {
    expect(parseDecimalSeconds("1.1234567899")).toEqual([1, 123_456_789]);
    expect(parseDecimalSeconds("-1.1234567899")).toEqual([-2, 876_543_211]);
    expect(parseDecimalSeconds("5.")).toEqual([5, 0]);
    for (const bad of ["", "1e9", "+1", "1.2.3", " 1", "--1", "0x10"]) expect(parseDecimalSeconds(bad)).toBeUndefined();
    expect(() => parsePaxTime("soon")).toThrow(/pax header: bad time "soon"/);
    expect(() => splitNs(10n ** 40n)).toThrow(/out of range/);
  });
});

describe("sources", () => {
  it("the scanner floors stat times of files before 1970", () => {
    const dir = mkdtempSync(join(tmpdir(), "particle-time-"));
    try {
      const cases: [string, string, number, number][] = [
        ["a", "1969-12-31 23:59:59.000000123", -1, 123],
        ["b", "1969-12-31 23:59:58.999999999", -2, 999_999_999],
        ["c", "1970-01-01 00:00:00.5", 0, 500_000_000],
        ["d", "1960-06-15 12:00:00.25", Date.UTC(1960, 5, 15, 12) / 1000, 250_000_000],
      ];
      for (const [name, when, sec, nsec] of cases) {
        const p = join(dir, name);
        writeFileSync(p, "");
        execFileSync("touch", ["-h", "-d", `${when} UTC`, p]);
        expect(inodeFromStat(lstatSync(p, { bigint: true }), "file", [])).toMatchObject({ mtimeSec: sec, mtimeNsec: nsec });
      }
      utimesSync(join(dir, "a"), 0, 0);
      expect(inodeFromStat(lstatSync(join(dir, "a"), { bigint: true }), "file", [])).toMatchObject({ mtimeSec: 0, mtimeNsec: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("base-256 header numbers: negative mtimes are read, negative sizes and ids refused", () => {
    const num = (v: bigint) => {
      const b = Buffer.alloc(12);
      for (let i = 11, x = v; i >= 0; i--, x >>= 8n) b[i] = Number(x & 0xffn);
      b[0] = b[0]! | 0x80;
      return b;
    };
    for (const v of [-1, -2, -1_000_000_000, -(2 ** 40), 2 ** 33, 0]) expect(parseNumber(num(BigInt(v)), 0, 12, "mtime", true)).toBe(v);
    expect(() => parseNumber(num(-1n), 0, 12, "size")).toThrow(/negative size/);
    expect(() => parseNumber(num(-(2n ** 80n)), 0, 12, "mtime", true)).toThrow(/mtime out of range/);
  });

  it("tar entries: header times (base-256 before 1970) and PAX times override them, floored", () => {
    const bytes = tarBytes([
      { path: "hdr-neg", mtime: -1 },
      { path: "hdr-far", mtime: -2_000_000_000 },
      { path: "pax-a", mtime: -1, paxMtime: "-0.999999877" },
      { path: "pax-b", mtime: -2, paxMtime: "-1.5" },
      { path: "pax-c", mtime: 0, paxMtime: "0.000000001" },
      { path: "dir/", type: "dir", mtime: -1, paxMtime: "-1.000000123" },
    ]);
    const got: TarEntry[] = [];
    const r = new TarReader((e) => { got.push(e); return undefined; });
    r.push(bytes);
    r.end();
    expect(got.map((e) => [e.path.toString(), e.mtimeSec, e.mtimeNsec])).toEqual([
      ["hdr-neg", -1, 0],
      ["hdr-far", -2_000_000_000, 0],
      ["pax-a", -1, 123],
      ["pax-b", -2, 500_000_000],
      ["pax-c", 0, 1],
      ["dir", -2, 999_999_877],
    ]);
  });

  it("GNU tar's own archives of files before 1970, in pax and gnu formats", () => {
    const dir = mkdtempSync(join(tmpdir(), "particle-time-"));
    try {
      writeFileSync(join(dir, "f"), "x");
      execFileSync("touch", ["-d", "1969-12-31 23:59:59.000000123 UTC", join(dir, "f")]);
      const read = (format: string) => {
        const out: TarEntry[] = [];
        const r = new TarReader((e) => { out.push(e); return undefined; });
        r.push(execFileSync("tar", ["--create", `--format=${format}`, "-C", dir, "f"]));
        r.end();
        return [out[0]!.mtimeSec, out[0]!.mtimeNsec];
      };
      expect(read("pax")).toEqual([-1, 123]);
      // The gnu format has whole seconds only.
      expect(read("gnu")).toEqual([-1, 0]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("squashfs", () => {
  const tree = (sec: number): Inode => ({
    kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0, xattrs: [], size: 0,
    entries: [{ name: Buffer.from("d"), inode: { kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec: 5, mtimeNsec: 0, xattrs: [], size: 0, entries: [
      { name: Buffer.from("f"), inode: { kind: "file", perm: 0o644, uid: 0, gid: 0, mtimeSec: sec, mtimeNsec: 1, xattrs: [], size: 0 } },
    ] } }],
  });
  it.each([[0, undefined], [2 ** 32 - 1, undefined], [-1, "/d/f"], [2 ** 32, "/d/f"]])("mtime %d: %s cannot be stored", (sec, path) => {
    expect(unrepresentableInSquashfs(tree(sec))?.path).toBe(path);
  });
});
