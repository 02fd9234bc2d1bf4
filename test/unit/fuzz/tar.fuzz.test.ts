// Fuzzing the tar reader and the OCI layer builder on top of it (in memory; the blob path with real
// files is layer-blob.fuzz.test.ts). Arbitrary bytes, well-formed archives checked entry by entry,
// the same archives mutated past their checksums, and hostile ones: "..", absolute and dangling links.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TarReader, type TarEntry } from "../../../runtime/src/tar/reader.ts";
import { parsePax, parsePaxTime } from "../../../runtime/src/tar/pax.ts";
import { emptyDir, LayerBuilder, mergeLayer, type Dir } from "../../../runtime/src/oci/layers.ts";
import { tarBytes, type TarItem } from "../../host/lib/oci-tar.ts";
import { archiveArb, component, editHeaders, fixChecksums, headerEditArb, type GenItem } from "./tar-gen.ts";
import { expectRefused, mutate, mutationArb, outcome, params, RUNS, timeoutFor } from "./lib.ts";

interface Got { e: TarEntry; data: Buffer }

/** Feeds `bytes` in chunks of the given sizes (cycled), as the decompressor would. */
function readTar(bytes: Buffer, chunks: readonly number[] = [bytes.length || 1], onEntry?: (e: TarEntry) => TarEntry | void): Got[] {
  const out: Got[] = [];
  const r = new TarReader((e) => {
    onEntry?.(e);
    const got: Got = { e, data: Buffer.alloc(0) };
    out.push(got);
    const parts: Buffer[] = [];
    return { write: (c) => { parts.push(Buffer.from(c)); }, end: () => { got.data = Buffer.concat(parts); } };
  });
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = Math.max(1, chunks[i % chunks.length]!);
    r.push(bytes.subarray(off, off + n));
    off += n;
  }
  r.end();
  return out;
}

const norm = (p: Buffer) => Buffer.from(p.toString("latin1").split("/").filter((s) => s !== "" && s !== ".").join("/"), "latin1");

function expected(it: GenItem) {
  const type = it.type ?? "file";
  const data = it.data === undefined ? Buffer.alloc(0) : Buffer.from(it.data);
  return {
    path: norm(it.path).toString("hex"),
    type,
    perm: it.mode!,
    uid: it.uid!,
    gid: it.gid!,
    size: type === "file" ? data.length : 0,
    mtime: [it.mtime!, 0],
    link: (type === "link" ? norm(Buffer.from(it.linkname!)) : Buffer.from(it.linkname ?? "")).toString("hex"),
    dev: type === "chr" || type === "blk" ? [it.devmajor, it.devminor] : [0, 0],
    xattrs: Object.entries(it.xattrs ?? {}).map(([k, v]) => [Buffer.from(k).toString("hex"), Buffer.from(v).toString("hex")]).sort((a, b) => Buffer.compare(Buffer.from(a[0]!, "hex"), Buffer.from(b[0]!, "hex"))),
    data: data.toString("hex"),
  };
}

const actual = ({ e, data }: Got) => ({
  path: e.path.toString("hex"),
  type: e.type,
  perm: e.perm,
  uid: e.uid,
  gid: e.gid,
  size: e.size,
  mtime: [e.mtimeSec, e.mtimeNsec],
  link: e.linkname.toString("hex"),
  dev: [e.devmajor, e.devminor],
  xattrs: e.xattrs.map((x) => [x.name.toString("hex"), x.value.toString("hex")]),
  data: data.toString("hex"),
});

/** What every entry the reader lets through must satisfy, whatever the input. */
function checkEntry(e: TarEntry, data: Buffer): void {
  const parts = e.path.length ? e.path.toString("latin1").split("/") : [];
  for (const p of parts) {
    expect(p === "" || p === "." || p === "..", `path component ${JSON.stringify(p)}`).toBe(false);
    expect(p.includes("\0"), "NUL in a name").toBe(false);
    expect(p.length).toBeLessThanOrEqual(255);
  }
  if (e.type === "link") expect(e.linkname.toString("latin1").split("/")).not.toContain("..");
  if (e.type === "file") expect(data.length).toBe(e.size);
  for (const n of [e.uid, e.gid, e.size]) expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
  // Times before 1970 are negative seconds; the nanoseconds are always in [0, 1e9).
  expect(Number.isSafeInteger(e.mtimeSec)).toBe(true);
  expect(Number.isInteger(e.mtimeNsec) && e.mtimeNsec >= 0 && e.mtimeNsec < 1e9).toBe(true);
  expect(e.uid).toBeLessThanOrEqual(0xffffffff);
  expect(e.gid).toBeLessThanOrEqual(0xffffffff);
}

const TAR_ERROR = /^(tar|pax header)/;
const chunking = fc.oneof(fc.constant([1 << 20]), fc.array(fc.integer({ min: 1, max: 1100 }), { minLength: 1, maxLength: 4 }));

/** The layer semantics on top, as unpackLayer runs them: every node a plain name, links to real files. */
function buildLayer(bytes: Buffer, lower: Dir, chunks: readonly number[]): Dir {
  const b = new LayerBuilder(lower, "layer 2/2");
  readTar(bytes, chunks, (e) => { b.add(e); });
  return b.root;
}

function checkTree(d: Dir, files: Set<object>, depth = 0): void {
  expect(depth).toBeLessThan(2100);
  for (const [name, n] of d.children) {
    expect(name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0"), `node name ${JSON.stringify(name)}`).toBe(false);
    if (n.t === "dir") checkTree(n.dir, files, depth + 1);
    else if (n.t === "leaf" && n.inode.kind === "file") files.add(n.inode);
  }
}

const LOWER = tarBytes([{ path: "etc/passwd", data: "root:x:0:0\n" }, { path: "bin/sh", data: "elf" }, { path: "usr/", type: "dir" }]);
const lowerTree = (): Dir => {
  const lower = emptyDir();
  const b = new LayerBuilder(emptyDir(), "layer 1/2");
  for (const e of readTar(LOWER)) b.add(e.e);
  mergeLayer(lower, b.root);
  return lower;
};

describe("tar reader fuzz", () => {
  it(`arbitrary bytes: entries or a clean tar error (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.uint8Array({ minLength: 512, maxLength: 512 }).map((b) => fixChecksums(Buffer.concat([Buffer.from(b.fill(0x20, 257, 263)).fill(0x75, 257, 258), Buffer.alloc(1024)])))), chunking, (bytes, chunks) => {
        const r = outcome(() => readTar(Buffer.from(bytes), chunks), TAR_ERROR);
        if (r.ok) for (const g of r.value) checkEntry(g.e, g.data);
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));

  it(`well-formed archives read back exactly, in any chunking (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(archiveArb, chunking, ({ items, bytes }, chunks) => {
        const r = outcome(() => readTar(bytes, chunks), TAR_ERROR);
        if (!r.ok) throw r.error;
        expect(r.value.map(actual)).toEqual(items.map(expected));
      }),
      params(),
    );
  }, timeoutFor(RUNS, 3));

  it(`mutated archives (bytes, header fields, checksums repaired) through the layer builder: entries and a tree that keep the rules, or a clean error naming the layer or entry (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(archiveArb, fc.array(mutationArb, { maxLength: 3 }), fc.array(headerEditArb, { maxLength: 3 }), fc.boolean(), chunking, ({ bytes }, ms, edits, repair, chunks) => {
        let b = editHeaders(mutate(bytes, ms), edits);
        if (repair) b = fixChecksums(b);
        const builder = new LayerBuilder(lowerTree(), "layer 2/2");
        const r = outcome(() => readTar(b, chunks, (e) => { builder.add(e); }), /^(tar|pax header|layer 2\/2: ".*": )/s);
        if (!r.ok) return;
        for (const g of r.value) checkEntry(g.e, g.data);
        checkTree(builder.root, new Set());
      }),
      params(),
    );
  }, timeoutFor(RUNS, 3));

  it(`PAX records and times: a value or a clean error (${RUNS} cases)`, () => {
    const rec = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 }), fc.integer({ min: -3, max: 3 })).map(([k, v, d]) => {
        const body = ` ${k}=${v}\n`;
        return Buffer.from(`${Buffer.byteLength(body) + 2 + d}${body}`);
      }),
    );
    fc.assert(
      fc.property(fc.array(rec, { maxLength: 4 }), fc.string({ maxLength: 30 }), (recs, t) => {
        outcome(() => parsePax(Buffer.concat(recs)), /^pax header/);
        const r = outcome(() => parsePaxTime(t), /^pax header/);
        // Seconds may be negative (before 1970); nanoseconds are always in [0, 1e9).
        if (r.ok) {
          expect(Number.isSafeInteger(r.value[0])).toBe(true);
          expect(Number.isInteger(r.value[1]) && r.value[1] >= 0 && r.value[1] < 1e9).toBe(true);
        }
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));
});

/** Hostile items: escapes through "..", absolute links, hardlinks to names outside or not yet seen. */
const hostileItem: fc.Arbitrary<TarItem> = fc.oneof(
  fc.constantFrom<TarItem>(
    { path: "../escape", data: "x" },
    { path: "a/../../escape", data: "x" },
    { path: "/abs/file", data: "x" },
    { path: "link", type: "symlink", linkname: "/etc" },
    { path: "link/passwd", data: "through the symlink" },
    { path: "up", type: "symlink", linkname: "../../../.." },
    { path: "up/x", data: "x" },
    { path: "h-out", type: "link", linkname: "../etc/passwd" },
    { path: "h-abs", type: "link", linkname: "/etc/passwd" },
    { path: "h-missing", type: "link", linkname: "not/yet" },
    { path: "not/yet", data: "late" },
    { path: "h-root", type: "link", linkname: "/" },
    { path: "h-dir", type: "link", linkname: "usr" },
    { path: "h-self", type: "link", linkname: "h-self" },
    { path: ".wh...", data: "" },
    { path: "usr/.wh..wh..opq", data: "" },
    { path: ".wh.etc", data: "" },
    { path: "./", type: "dir" },
    { path: "/", type: "file", data: "root as a file" },
    { path: "bin/sh/x", data: "under a file" },
  ),
  fc.record({ path: fc.array(component, { minLength: 1, maxLength: 3 }).map((cs) => Buffer.concat(cs.flatMap((c) => [Buffer.from("../"), c]))), data: fc.constant("x") }),
);

describe("layer builder fuzz", () => {
  it(`hostile and well-formed layers: a tree of plain names inside the root, or an error naming the layer and entry (${RUNS} cases)`, () => {
    const items = fc.array(fc.oneof({ weight: 2, arbitrary: hostileItem }, { weight: 1, arbitrary: archiveArb.map((a) => a.items[0]).filter((x): x is GenItem => x !== undefined) }), { maxLength: 6 });
    fc.assert(
      fc.property(items, chunking, (list, chunks) => {
        const lower = lowerTree();
        const r = outcome(() => buildLayer(tarBytes(list), lower, chunks), /^(tar|pax header|layer 2\/2: ".*": )/s);
        if (!r.ok) return;
        const files = new Set<object>();
        checkTree(r.value, files);
        mergeLayer(lower, r.value);
        checkTree(lower, new Set());
      }),
      params(),
    );
  }, timeoutFor(RUNS, 2));

});

/** Sets a header field of the first block to raw bytes and repairs the checksum. */
function withField(b: Buffer, at: number, bytes: number[]): Buffer {
  const c = Buffer.from(b);
  Buffer.from(bytes).copy(c, at);
  return fixChecksums(c);
}

/** A PAX "x" header with the given records, then one entry. */
function paxThen(records: Buffer, item: TarItem): Buffer {
  const head = tarBytes([{ path: "PaxHeader", data: records }], { endBlocks: false });
  head.write("x", 156, "latin1");
  return Buffer.concat([fixChecksums(head), tarBytes([item])]);
}
const rec = (key: Buffer | string, value: Buffer | string): Buffer => {
  const body = Buffer.concat([Buffer.from(" "), Buffer.from(key), Buffer.from("="), Buffer.from(value), Buffer.from("\n")]);
  let n = body.length + 1;
  while (String(n).length + body.length !== n) n = String(n).length + body.length;
  return Buffer.concat([Buffer.from(String(n)), body]);
};

describe("regressions", () => {
  it("a base-256 uid beyond 32 bits is refused by entry name, not truncated into another uid (found by the mutation property)", () => {
    // Counterexample: uid field 0x80 0x10 0x10 … (4521260802379792).
    const b = withField(tarBytes([{ path: "A", data: "" }]), 108, [0x80, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10]);
    expectRefused(() => readTar(b), /^tar entry "A": uid 4521260802379792 is out of range/);
  });

  it("a PAX uid, gid or device number the image cannot hold is refused", () => {
    expectRefused(() => readTar(paxThen(rec("uid", "4294967296"), { path: "u", data: "" })), /^tar entry "u": uid 4294967296 is out of range/);
    expectRefused(() => readTar(paxThen(rec("gid", "99999999999999999999"), { path: "g", data: "" })), /^tar entry "g": gid .* out of range/);
    expectRefused(() => readTar(paxThen(rec("SCHILY.devmajor", "4096"), { path: "d", type: "chr" })), /^tar entry "d": SCHILY.devmajor 4096 is out of range/);
  });

  it("a PAX time beyond 2^53 seconds is refused, not rounded", () => {
    expectRefused(() => readTar(paxThen(rec("mtime", "99999999999999999999.5"), { path: "t", data: "" })), /^tar entry "t": PAX time .* out of range/);
  });

  it("NUL bytes and over-long names in PAX paths and symlink targets are refused by entry", () => {
    expectRefused(() => readTar(paxThen(rec("path", Buffer.from("a\0b")), { path: "x", data: "" })), /NUL byte in path/);
    expectRefused(() => readTar(paxThen(rec("path", "n".repeat(256)), { path: "x", data: "" })), /a name longer than 255 bytes/);
    expectRefused(() => readTar(paxThen(rec("path", "a/".repeat(2100)), { path: "x", data: "" })), /path of 4200 bytes is longer than 4095/);
    expectRefused(() => readTar(paxThen(rec("linkpath", Buffer.from("/etc\0x")), { path: "s", type: "symlink", linkname: "y" })), /^tar entry "s": symlink target has a NUL byte/);
  });

  it("a hardlink whose target climbs out with \"..\" is refused naming the entry and its target", () => {
    expectRefused(() => readTar(tarBytes([{ path: "h", type: "link", linkname: "../../etc/shadow" }])), /^tar entry "h": hardlink target "\.\.\/\.\.\/etc\/shadow": "\.\." in path/);
  });

  it("hardlinks outside the layers or to a name not yet seen fail naming the layer and entry; absolute ones resolve inside the root", () => {
    const lower = lowerTree();
    expectRefused(() => buildLayer(tarBytes([{ path: "h", type: "link", linkname: "later" }, { path: "later", data: "" }]), lower, [512]), /^layer 2\/2: "h": hardlink to "later", which is not in this layer or below/);
    const t = buildLayer(tarBytes([{ path: "h", type: "link", linkname: "/etc/passwd" }]), lower, [512]);
    expect((t.children.get("h") as { t: "leaf"; lower?: string }).lower).toBe("etc/passwd");
  });

  it("PAX metadata headers without an entry cannot pile up in memory", () => {
    const big = rec("SCHILY.xattr.user.a", Buffer.alloc(40 << 20, 0x61));
    const header = paxThen(big, { path: "x", data: "" }).subarray(0, 512 + Math.ceil(big.length / 512) * 512);
    expectRefused(() => readTar(Buffer.concat([header, header, tarBytes([{ path: "x", data: "" }])])), /^tar: metadata headers of \d+ bytes in a row are too large/);
  });

  it("xattr names in PAX records keep their bytes (not decoded as UTF-8)", () => {
    const got = readTar(paxThen(rec(Buffer.from([...Buffer.from("SCHILY.xattr.user."), 0xff, 0xfe]), "v"), { path: "x", data: "" }));
    expect([...got[0]!.e.xattrs[0]!.name]).toEqual([...Buffer.from("user."), 0xff, 0xfe]);
  });
});
