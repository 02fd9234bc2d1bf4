// Generators of tar archives for the fuzz tests: well-formed ones (random names, sizes, PAX and GNU
// long-name records, xattrs, every entry type) written by the independent test writer, and the
// mutations that keep them nearly valid (header checksums repaired, numeric fields set to absurd values).
import fc from "fast-check";
import { tarBytes, type TarItem } from "../../host/lib/oci-tar.ts";

/** One path component: any bytes but "/" and NUL, never "." or "..". */
export const component: fc.Arbitrary<Buffer> = fc
  .oneof(
    { weight: 6, arbitrary: fc.string({ unit: fc.constantFrom(..."abcdefxyz019_-.é"), minLength: 1, maxLength: 12 }).map((s) => Buffer.from(s)) },
    { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 30 }).map((b) => Buffer.from(b.map((x) => (x === 0 || x === 0x2f ? 0x41 : x)))) },
    { weight: 1, arbitrary: fc.integer({ min: 90, max: 255 }).map((n) => Buffer.alloc(n, 0x6e)) },
  )
  .filter((b) => !b.equals(Buffer.from(".")) && !b.equals(Buffer.from("..")));

const relPath = fc.array(component, { minLength: 1, maxLength: 4 }).map((cs) => Buffer.concat(cs.flatMap((c, i) => (i ? [Buffer.from("/"), c] : [c]))));

/** A path as writers spell it: bare, "./"-prefixed or absolute, sometimes with doubled slashes. */
const spelled = fc.tuple(fc.constantFrom("", "./", "/", ".//"), relPath, fc.constantFrom("", "", "", "/")).map(([pre, p, post]) => Buffer.concat([Buffer.from(pre), p, Buffer.from(post)]));

const xattrName = fc.oneof(
  fc.constantFrom("security.capability", "user.note", "trusted.overlay.x", "security.selinux"),
  fc.uint8Array({ minLength: 1, maxLength: 20 }).map((b) => `user.${Buffer.from(b.map((x) => (x === 0 || x === 0x3d || x === 0x0a ? 0x5f : x))).toString("latin1")}`),
);

export interface GenItem extends TarItem {
  path: Buffer;
}

const common = {
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: fc.integer({ min: 0, max: 0o7777777 }),
  gid: fc.integer({ min: 0, max: 0o7777777 }),
  mtime: fc.integer({ min: 0, max: 8 ** 11 - 1 }),
  longName: fc.constantFrom("gnu" as const, "pax" as const),
};

/** An item of a well-formed archive; hardlinks point at an earlier file (by index, resolved in `archive`). */
const itemArb = fc.oneof(
  { weight: 5, arbitrary: fc.record({ path: spelled, type: fc.constant("file" as const), data: fc.oneof({ weight: 5, arbitrary: fc.uint8Array({ maxLength: 600 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 3000 }).map((n) => new Uint8Array(n).fill(7)) }), ...common, xattrs: fc.option(fc.dictionary(xattrName, fc.uint8Array({ maxLength: 40 }), { maxKeys: 3 }), { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ path: spelled, type: fc.constant("dir" as const), ...common }) },
  { weight: 2, arbitrary: fc.record({ path: spelled, type: fc.constant("symlink" as const), linkname: fc.oneof(fc.constantFrom("/etc/passwd", "../../../etc", "/", "."), fc.string({ maxLength: 300 }).map((s) => s.replace(/\0/g, "_"))), ...common }) },
  { weight: 2, arbitrary: fc.record({ path: spelled, type: fc.constant("link" as const), target: fc.nat(), ...common }) },
  { weight: 1, arbitrary: fc.record({ path: spelled, type: fc.constantFrom("chr" as const, "blk" as const), devmajor: fc.integer({ min: 0, max: 4095 }), devminor: fc.integer({ min: 0, max: 0xfffff }), ...common }) },
  { weight: 1, arbitrary: fc.record({ path: spelled, type: fc.constant("fifo" as const), ...common }) },
);

/** A well-formed archive and its items (hardlink targets resolved to an earlier file's spelled path). */
export const archiveArb: fc.Arbitrary<{ items: GenItem[]; bytes: Buffer }> = fc
  .array(itemArb, { maxLength: 12 })
  .map((raw) => {
    const items: GenItem[] = [];
    for (const r of raw) {
      const { target, xattrs, data, ...rest } = r as typeof r & { target?: number; xattrs?: Record<string, Uint8Array>; data?: Uint8Array };
      const it: GenItem = { ...rest };
      if (data) it.data = Buffer.from(data);
      if (xattrs) it.xattrs = Object.fromEntries(Object.entries(xattrs).map(([k, v]) => [k, Buffer.from(v)]));
      if (r.type === "link") {
        const files = items.filter((x) => (x.type ?? "file") === "file");
        if (files.length === 0) continue;
        it.linkname = files[target! % files.length]!.path;
      }
      items.push(it);
    }
    return { items, bytes: tarBytes(items) };
  });

/** Field offsets and lengths in a header block (POSIX ustar). */
const FIELDS = { mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12], chksum: [148, 8], devmajor: [329, 8], devminor: [337, 8] } as const;

/** An edit of one header field: absurd numbers in octal or base-256, non-octal text, another type flag. */
export type HeaderEdit =
  | { k: "num"; block: number; field: keyof typeof FIELDS; text: string }
  | { k: "b256"; block: number; field: keyof typeof FIELDS; first: number; fill: number }
  | { k: "type"; block: number; flag: string }
  | { k: "name"; block: number; name: string };

export const headerEditArb: fc.Arbitrary<HeaderEdit> = fc.oneof(
  fc.record({ k: fc.constant("num" as const), block: fc.nat(), field: fc.constantFrom(...(Object.keys(FIELDS) as (keyof typeof FIELDS)[])), text: fc.constantFrom("77777777777", "7777777", "0", "", " ", "8", "-1", "1e9", "00000001000", "17777777777") }),
  fc.record({ k: fc.constant("b256" as const), block: fc.nat(), field: fc.constantFrom("size" as const, "uid" as const, "mtime" as const, "devmajor" as const), first: fc.constantFrom(0x80, 0xff, 0x81, 0xbf), fill: fc.constantFrom(0, 0xff, 0x10) }),
  fc.record({ k: fc.constant("type" as const), block: fc.nat(), flag: fc.constantFrom(..."01234567xgLKSDVAM\0 ") }),
  fc.record({ k: fc.constant("name" as const), block: fc.nat(), name: fc.constantFrom("..", "../x", "/..", "a/../../b", ".", "./", "/", "a//b", ".wh..", ".wh..wh..opq", ".wh.") }),
);

const isHeader = (b: Buffer, off: number) => b.toString("latin1", off + 257, off + 262) === "ustar";

/** Recomputes the checksum of every block that looks like a header, so mutations get past it. */
export function fixChecksums(b: Buffer): Buffer {
  for (let off = 0; off + 512 <= b.length; off += 512) {
    if (!isHeader(b, off)) continue;
    b.fill(0x20, off + 148, off + 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += b[off + i]!;
    b.write(sum.toString(8).padStart(6, "0") + "\0 ", off + 148, 8, "latin1");
  }
  return b;
}

/** Applies header edits to the header blocks of `input` (the n-th edit hits header n mod count). */
export function editHeaders(input: Buffer, edits: readonly HeaderEdit[]): Buffer {
  const b = Buffer.from(input);
  const heads: number[] = [];
  for (let off = 0; off + 512 <= b.length; off += 512) if (isHeader(b, off)) heads.push(off);
  if (heads.length === 0) return b;
  for (const e of edits) {
    const off = heads[e.block % heads.length]!;
    if (e.k === "type") b.write(e.flag, off + 156, 1, "latin1");
    else if (e.k === "name") { b.fill(0, off, off + 100); b.write(e.name, off, 100, "latin1"); }
    else {
      const [at, len] = FIELDS[e.field];
      if (e.k === "num") { b.fill(0, off + at, off + at + len); b.write(e.text, off + at, len, "latin1"); }
      else { b.fill(e.fill, off + at, off + at + len); b[off + at] = e.first; }
    }
  }
  return b;
}
