// The tar stream reader: entries and bytes out of crafted archives (test writer) and GNU tar's own
// output, fed whole and one byte at a time.
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, symlinkSync, linkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TarReader, type TarEntry } from "../../runtime/src/tar/reader.ts";
import { parseNumber, parseHeader } from "../../runtime/src/tar/header.ts";
import { parsePax, parsePaxTime } from "../../runtime/src/tar/pax.ts";
import { tarBytes } from "../host/lib/oci-tar.ts";

interface Got { e: TarEntry; data: Buffer }

function read(bytes: Buffer, chunk = bytes.length): Got[] {
  const out: Got[] = [];
  const r = new TarReader((e) => {
    const got: Got = { e, data: Buffer.alloc(0) };
    out.push(got);
    return { write: (c) => { got.data = Buffer.concat([got.data, c]); }, end: () => {} };
  });
  for (let i = 0; i < bytes.length; i += chunk) r.push(bytes.subarray(i, i + chunk));
  r.end();
  return out;
}

const summary = (g: Got[]) => g.map(({ e, data }) => ({
  path: e.path.toString(), type: e.type, perm: e.perm.toString(8), uid: e.uid, size: e.size, link: e.linkname.toString(),
  data: data.toString(), x: e.xattrs.map((x) => `${x.name}=${x.value.toString("hex")}`),
}));

describe("tar reader", () => {
  const crafted = tarBytes([
    { path: "./", type: "dir", mode: 0o755 },
    { path: "./etc/", type: "dir" },
    { path: "./etc/hosts", data: "127.0.0.1 localhost\n", mode: 0o644, uid: 0 },
    { path: "usr/bin/tool", data: "x".repeat(1500), mode: 0o4755, uid: 70000, xattrs: { "security.capability": Buffer.from([1, 0, 0, 2]), "user.note": "hi" } },
    { path: "a/" + "long/".repeat(30) + "name", data: "gnu long name", longName: "gnu" },
    { path: "b/" + "long/".repeat(30) + "name", data: "pax path", longName: "pax" },
    { path: "lnk", type: "link", linkname: "./etc/hosts" },
    { path: "sym", type: "symlink", linkname: "../x/".repeat(30) + "y" },
    { path: "dev/null", type: "chr", devmajor: 1, devminor: 3, mode: 0o666 },
    { path: "etc/.wh.old", data: "" },
  ]);
  const want = [
    { path: "", type: "dir", perm: "755", uid: 0, size: 0, link: "", data: "", x: [] },
    { path: "etc", type: "dir", perm: "755", uid: 0, size: 0, link: "", data: "", x: [] },
    { path: "etc/hosts", type: "file", perm: "644", uid: 0, size: 20, link: "", data: "127.0.0.1 localhost\n", x: [] },
    { path: "usr/bin/tool", type: "file", perm: "4755", uid: 70000, size: 1500, link: "", data: "x".repeat(1500), x: ["security.capability=01000002", "user.note=6869"] },
    { path: "a/" + "long/".repeat(30) + "name", type: "file", perm: "644", uid: 0, size: 13, link: "", data: "gnu long name", x: [] },
    { path: "b/" + "long/".repeat(30) + "name", type: "file", perm: "644", uid: 0, size: 8, link: "", data: "pax path", x: [] },
    { path: "lnk", type: "link", perm: "644", uid: 0, size: 0, link: "etc/hosts", data: "", x: [] },
    { path: "sym", type: "symlink", perm: "644", uid: 0, size: 0, link: "../x/".repeat(30) + "y", data: "", x: [] },
    { path: "dev/null", type: "chr", perm: "666", uid: 0, size: 0, link: "", data: "", x: [] },
    { path: "etc/.wh.old", type: "file", perm: "644", uid: 0, size: 0, link: "", data: "", x: [] },
  ];

  it.each([1, 7, 511, 512, 513, 4096, 1 << 20])("reads the crafted archive fed in %i-byte chunks", (chunk) => {
    expect(summary(read(crafted, chunk))).toEqual(want);
  });

  it("reads GNU tar's PAX output: long names, hardlinks, symlinks, nanosecond mtimes", () => {
    const d = mkdtempSync(join(tmpdir(), "tar-unit-"));
    try {
      mkdirSync(join(d, "t/sub"), { recursive: true });
      const long = "n".repeat(200);
      writeFileSync(join(d, "t/sub", long), "long\n");
      writeFileSync(join(d, "t/f"), Buffer.alloc(70000, 7));
      linkSync(join(d, "t/f"), join(d, "t/f2"));
      symlinkSync("f", join(d, "t/s"));
      execFileSync("touch", ["-h", "-d", "2001-02-03 04:05:06.123456789 UTC", join(d, "t/f")]);
      const bytes = execFileSync("tar", ["--create", "--format=pax", "--sort=name", "-C", join(d, "t"), "."]);
      const got = read(bytes, 10_000);
      const by = new Map(got.map((g) => [g.e.path.toString(), g]));
      expect([...by.keys()]).toEqual(["", "f", "f2", "s", "sub", `sub/${long}`]);
      expect(by.get("f")!.data.equals(Buffer.alloc(70000, 7))).toBe(true);
      expect(by.get("f")!.e.mtimeSec).toBe(981173106);
      expect(by.get("f")!.e.mtimeNsec).toBe(123456789);
      expect(by.get("f2")!.e).toMatchObject({ type: "link" });
      expect(by.get("f2")!.e.linkname.toString()).toBe("f");
      expect(by.get("s")!.e.linkname.toString()).toBe("f");
      expect(by.get(`sub/${long}`)!.data.toString()).toBe("long\n");
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("a stream that stops right after the last entry's bytes (no padding, no end blocks: umoci 0.4 insert) is complete", () => {
    const whole = tarBytes([{ path: "lib/inserted", data: "inserted\n" }], { endBlocks: false });
    const cut = whole.subarray(0, 512 + "inserted\n".length);
    expect(read(cut).map((g) => [g.e.path.toString(), g.data.toString()])).toEqual([["lib/inserted", "inserted\n"]]);
    expect(() => read(cut.subarray(0, cut.length - 1))).toThrow(/tar stream truncated \(after 1 entries\)/);
    expect(() => read(cut.subarray(0, 300))).toThrow(/tar stream truncated \(after 0 entries\)/);
  });

  it("refuses a truncated stream, a bad checksum, \"..\" and sparse entries, naming the problem", () => {
    expect(() => read(crafted.subarray(0, 100))).toThrow(/truncated/);
    const bad = Buffer.from(crafted);
    bad[0] = bad[0]! ^ 0xff;
    expect(() => read(bad)).toThrow(/bad checksum/);
    expect(() => read(tarBytes([{ path: "../escape", data: "x" }]))).toThrow(/"\.\." in path/);
    const sparse = tarBytes([{ path: "s", data: "x" }]);
    sparse.write("S", 156, "latin1");
    // Fix the checksum after changing the type flag.
    sparse.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += sparse[i]!;
    sparse.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
    expect(() => read(sparse)).toThrow(/unsupported GNU sparse file/);
  });

  it("a global PAX header gives attributes to every entry, never a path", () => {
    const rec = (k: string, v: string) => { const body = ` ${k}=${v}\n`; let n = body.length + 1; while (String(n).length + body.length !== n) n = String(n).length + body.length; return `${n}${body}`; };
    const g = Buffer.from(rec("uid", "42") + rec("path", "everything"));
    const hdr = tarBytes([{ path: "pax_global", data: g }]).subarray(0, 512 + Math.ceil(g.length / 512) * 512);
    hdr.write("g", 156, "latin1");
    hdr.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += hdr[i]!;
    hdr.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
    const got = read(Buffer.concat([hdr, tarBytes([{ path: "a", data: "1" }, { path: "b", data: "2" }])]));
    expect(got.map((x) => [x.e.path.toString(), x.e.uid])).toEqual([["a", 42], ["b", 42]]);
  });

  it("accepts an archive without end-of-archive blocks, and ignores what follows them", () => {
    expect(read(tarBytes([{ path: "f", data: "d" }], { endBlocks: false })).map((g) => g.data.toString())).toEqual(["d"]);
    expect(read(Buffer.concat([tarBytes([{ path: "f", data: "d" }]), Buffer.alloc(10240, 0x55)])).length).toBe(1);
  });
});

describe("tar fields", () => {
  it("octal and base-256 numbers", () => {
    const b = Buffer.alloc(12);
    b.write("00000001750\0", "latin1");
    expect(parseNumber(b, 0, 12, "x")).toBe(0o1750);
    const big = Buffer.alloc(12);
    big[0] = 0x80;
    big.writeUIntBE(9 * 1024 ** 3, 6, 6);
    expect(parseNumber(big, 0, 12, "size")).toBe(9 * 1024 ** 3);
    expect(() => parseNumber(Buffer.from("12x\0"), 0, 4, "mode")).toThrow(/mode is not an octal number/);
  });

  it("PAX records keep binary values and parse times", () => {
    const rec = Buffer.concat([Buffer.from("27 SCHILY.xattr.user.b="), Buffer.from([0, 1, 0xff]), Buffer.from("\n"), Buffer.from("12 path=a/b\n")]);
    const m = parsePax(rec);
    expect([...m.get("SCHILY.xattr.user.b")!]).toEqual([0, 1, 0xff]);
    expect(m.get("path")!.toString()).toBe("a/b");
    expect(parsePaxTime("1700000000.5")).toEqual([1700000000, 500000000]);
    expect(parsePaxTime("-5.1")).toEqual([-6, 900000000]);
    expect(() => parsePax(Buffer.from("99 path=x\n"))).toThrow(/overruns/);
  });

  it("a header block of the wrong size is refused", () => {
    expect(() => parseHeader(new Uint8Array(100))).toThrow(/expected 512 bytes/);
  });
});
