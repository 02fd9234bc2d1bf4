import { describe, expect, it } from "vitest";
import { parseSource } from "../../runtime/src/store/source.ts";
import { compareIds, decodeObjectList, encodeObjectList, nextId } from "../../runtime/src/store/deployments.ts";
import { parseOsRelease } from "../../runtime/src/store/os-release.ts";
import { parseManifest, renderManifest, type Manifest } from "../../runtime/src/manifest.ts";
import { objectRelPath } from "../../runtime/src/store/layout.ts";

describe("parseSource", () => {
  it.each([
    ["dir:/srv/tree", { kind: "dir", path: "/srv/tree" }],
    ["tar:/x/y.tar", { kind: "tar", path: "/x/y.tar" }],
    ["tar:rel.tar.zst", { kind: "tar", path: "rel.tar.zst" }],
    ["/srv/tree", { kind: "dir", path: "/srv/tree" }],
    ["/srv/os.tar.gz", { kind: "tar", path: "/srv/os.tar.gz" }],
    ["./os.tzst", { kind: "tar", path: "./os.tzst" }],
    ["dir:/with:colon", { kind: "dir", path: "/with:colon" }],
    ["oci:/srv/layout:v2", { kind: "oci", image: { transport: "oci", ref: "oci:/srv/layout:v2" } }],
  ])("%s", (spec, want) => expect(parseSource(spec)).toEqual(want));

  it.each([
    ["", /empty/],
    ["dir:", /missing path after "dir:"/],
    ["oci:", /missing the path after "oci:"/],
    ["ftp:foo", /unknown scheme "ftp"/],
    ["http://x/y", /unknown scheme "http"/],
  ])("refuses %j", (spec, msg) => expect(() => parseSource(spec)).toThrow(msg));
});

describe("deployment ids", () => {
  it.each([
    [[], "1"],
    [["1"], "2"],
    [["1", "2", "10"], "11"],
    [["3", ".tmp", "junk"], "4"],
  ])("after %j comes %s", (ids, want) => expect(nextId(ids)).toBe(want));

  it("sorts numerically", () => expect(["10", "9", "1"].sort(compareIds)).toEqual(["1", "9", "10"]));
});

describe("object lists", () => {
  const a = "aa".repeat(32);
  const b = "0b".repeat(32);
  it("round-trip sorted and deduplicated", () => {
    const buf = encodeObjectList([a, b, a]);
    expect(buf.length).toBe(64);
    expect(decodeObjectList(buf, "x")).toEqual([b, a]);
  });
  it("refuse a truncated list", () => expect(() => decodeObjectList(Buffer.alloc(33), "list")).toThrow(/list: truncated/));
  it("fan out by the first two hex digits", () => expect(objectRelPath(a)).toBe(`aa/${"aa".repeat(31)}`));
});

describe("os-release", () => {
  it.each([
    ['PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_ID="13"\n', "13"],
    ["NAME=Ubuntu\nVERSION='24.04 LTS'\n", "24.04 LTS"],
    ["ID=debian\nBUILD_ID=rolling\n", "rolling"],
    ["ID=debian\n", undefined],
  ])("%j → %s", (text, want) => expect(parseOsRelease(text)).toBe(want));
});

describe("manifest", () => {
  const m: Manifest = {
    schema: 1, id: "3", format: "composefs", imageDigest: "ab".repeat(32), source: "dir:/x",
    created: "2026-11-25T00:00:00.000Z", files: 2, bytes: 10, version: "13", kernel: "6.12.0-1-amd64",
  };
  it("round-trips", () => expect(parseManifest(renderManifest(m), "m")).toEqual(m));
  it.each([
    ["not json", /m: not valid JSON/],
    [JSON.stringify({ ...m, imageDigest: "xyz" }), /imageDigest/],
    [JSON.stringify({ ...m, format: "zip" }), /format/],
    [JSON.stringify({ ...m, id: "../evil" }), /id/],
    [JSON.stringify({ ...m, schema: 2 }), /schema/],
  ])("refuses %s", (text, msg) => expect(() => parseManifest(text, "m")).toThrow(msg));
});
