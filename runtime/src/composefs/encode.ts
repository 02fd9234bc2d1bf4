// The composefs view of a tree: what the EROFS metadata image must hold so that overlayfs
// (metacopy=on, redirect_dir=on, the object store as a data-only lower) shows the original tree.
//   - non-empty regular files point at their object: trusted.overlay.redirect + trusted.overlay.metacopy;
//   - the tree's own trusted.overlay.* xattrs are escaped (trusted.overlay.overlay.*), which overlayfs
//     (>= 6.7) unescapes instead of interpreting;
//   - overlay whiteouts (0:0 character devices) would be interpreted and vanish, so, as mkcomposefs
//     does, they become empty regular files marked as escaped "xwhiteouts" (file: whiteout; parent
//     directory: whiteouts + opaque=x), both for trusted and userxattr overlays stacked on top.
import { NO_XATTRS, type Entry, type Inode, type Xattr } from "../tree/model.ts";
import { ObjectRef } from "../tree/object-digests.ts";

const TRUSTED_OVERLAY = Buffer.from("trusted.overlay.");
const ESCAPED_PREFIX = Buffer.from("trusted.overlay.overlay.");
export const XATTR_REDIRECT = Buffer.from("trusted.overlay.redirect");
export const XATTR_METACOPY = Buffer.from("trusted.overlay.metacopy");

const WHITEOUT_FILE_XATTRS: Xattr[] = [
  { name: Buffer.from("trusted.overlay.overlay.whiteout"), value: Buffer.alloc(0) },
  { name: Buffer.from("user.overlay.whiteout"), value: Buffer.alloc(0) },
];
const WHITEOUT_DIR_XATTRS: Xattr[] = [
  { name: Buffer.from("trusted.overlay.overlay.whiteouts"), value: Buffer.alloc(0) },
  { name: Buffer.from("user.overlay.whiteouts"), value: Buffer.alloc(0) },
  { name: Buffer.from("trusted.overlay.overlay.opaque"), value: Buffer.from("x") },
  { name: Buffer.from("user.overlay.opaque"), value: Buffer.from("x") },
];

/** overlayfs' struct ovl_metacopy: version, len, flags, digest algorithm (1 = sha256), digest. */
export function metacopyValue(digestHex: string): Buffer {
  return putMetacopy(Buffer.alloc(4 + digestHex.length / 2), digestHex);
}

function putMetacopy(b: Buffer, digestHex: string): Buffer {
  b[0] = 0;
  b[1] = b.length;
  b[2] = 0;
  b[3] = 1;
  b.write(digestHex, 4, "hex");
  return b;
}

/** The redirect target inside the data-only lower: "/" + objectRelPath(digest) = "/ab/cdef…". */
export function redirectValue(digestHex: string): Buffer {
  return putRedirect(Buffer.allocUnsafe(digestHex.length + 2), digestHex);
}

const HEX_DIGITS = Buffer.from("0123456789abcdef");

/**
 * Both values from a digest table's 32 bytes: staging's files carry table numbers, and the writer
 * asks for a file's xattrs up to four times, which made a 64-digit string each time (~590k strings
 * for the 630k-file tree's first pass alone, issue 13).
 */
function putFromRef(metacopy: Buffer, redirect: Buffer, ref: ObjectRef): void {
  metacopy[0] = 0;
  metacopy[1] = metacopy.length;
  metacopy[2] = 0;
  metacopy[3] = 1;
  ref.table.copyBytes(ref.n, metacopy, 4);
  redirect[0] = 0x2f;
  let o = 1;
  for (let k = 0; k < 32; k++) {
    const b = metacopy[4 + k]!;
    redirect[o++] = HEX_DIGITS[b >> 4]!;
    redirect[o++] = HEX_DIGITS[b & 15]!;
    if (k === 0) redirect[o++] = 0x2f;
  }
}

function putRedirect(b: Buffer, digestHex: string): Buffer {
  b.write(digestHex, 2, "latin1");
  b[0] = 0x2f;
  b[1] = b[2]!;
  b[2] = b[3]!;
  b[3] = 0x2f;
  return b;
}

export function escapeXattrName(name: Buffer): Buffer {
  if (name.length >= TRUSTED_OVERLAY.length && name.subarray(0, TRUSTED_OVERLAY.length).equals(TRUSTED_OVERLAY))
    return Buffer.concat([ESCAPED_PREFIX, name.subarray(TRUSTED_OVERLAY.length)]);
  return name;
}

const DIGEST = /^[0-9a-f]{64}$/;
export const isWhiteout = (i: Inode): boolean => i.kind === "chr" && (i.rdevMajor ?? 0) === 0 && (i.rdevMinor ?? 0) === 0;

/** Adds `extra` xattrs whose names are not there yet; returns a new sorted list. */
function withXattrs(xattrs: Xattr[], extra: readonly Xattr[]): Xattr[] {
  const out = [...xattrs];
  for (const x of extra) if (!out.some((y) => y.name.equals(x.name))) out.push(x);
  return out.sort((a, b) => Buffer.compare(a.name, b.name));
}

/**
 * Turns a tree whose regular files have data {kind:"object", digest} into the tree to write as the
 * composefs metadata image. Does not mutate its input unless `inPlace`; hardlinks stay shared
 * inodes. Staging uses composefsImage() instead.
 */
export function composefsTree(root: Inode, opts: { inPlace?: boolean } = {}): Inode {
  return convertTree(root, opts.inPlace === true, true);
}

/**
 * Staging's conversion: in place (the tree has no other use, and a second copy of every inode was
 * a large part of its peak memory), and a non-empty file's redirect and metacopy are not stored in
 * the tree: `xattrsOf` computes them from the digest whenever the EROFS writer asks (erofs/writer.ts),
 * so two xattr objects and two value buffers per file are never all alive at once (~20 MB at a
 * 60k-file stage's memory peak, issue 13). writeErofs(root, …, { xattrsOf }) writes the same image
 * as writeErofs(composefsTree(root), …).
 */
export function composefsImage(root: Inode): { root: Inode; xattrsOf: (inode: Inode) => readonly Xattr[] } {
  // One list refilled per file: the writer reads it before it asks again and copies what it keeps
  // (ErofsWriteOptions.xattrsOf), so the image phase makes no garbage per file either. Digests are
  // 64 hex digits here (checked by the conversion), so the values have fixed sizes.
  const metacopy: Xattr = { name: XATTR_METACOPY, value: Buffer.alloc(36) };
  const redirect: Xattr = { name: XATTR_REDIRECT, value: Buffer.alloc(66) };
  const pair: readonly Xattr[] = [metacopy, redirect];
  const xattrsOf = (inode: Inode): readonly Xattr[] => {
    if (!isObjectFile(inode)) return inode.xattrs;
    if (inode.xattrs.length > 0) return objectFileXattrs(inode);
    const data = inode.data;
    if (data instanceof ObjectRef) putFromRef(metacopy.value, redirect.value, data);
    else {
      const digest = (data as { digest: string }).digest;
      putMetacopy(metacopy.value, digest);
      putRedirect(redirect.value, digest);
    }
    return pair;
  };
  return { root: convertTree(root, true, false), xattrsOf };
}

/** After the conversion, only files with an object have a size: whiteouts became empty files. */
const isObjectFile = (i: Inode): boolean => i.kind === "file" && i.size > 0;

function objectFileXattrs(i: Inode): Xattr[] {
  const digest = (i.data as { digest: string }).digest;
  const added = [
    { name: XATTR_METACOPY, value: metacopyValue(digest) },
    { name: XATTR_REDIRECT, value: redirectValue(digest) },
  ];
  return i.xattrs.length === 0 ? added : withXattrs(i.xattrs, added);
}

function checkObject(i: Inode): void {
  const data = i.data;
  // A table's number is a digest by construction; asking it for the string only to test it was a
  // string per file (issue 13).
  if (data instanceof ObjectRef) return;
  if (data?.kind !== "object" || !DIGEST.test(data.digest))
    throw new Error(`composefs: a non-empty file needs an object digest (64 hex digits), got ${data?.kind ?? "none"}`);
}

function convertTree(root: Inode, inPlace: boolean, fileXattrs: boolean): Inode {
  const done = new Map<Inode, Inode>();
  const convert = (src: Inode): Inode => {
    // Staging's plain files (most of a tree) are left as they are, so a second visit through a
    // hardlink does no harm: they stay out of the map, which for 60k files cost ~7 MiB at the image
    // phase's peak (issue 13).
    if (inPlace && !fileXattrs && src.kind === "file" && src.xattrs.length === 0) {
      if (src.size > 0) checkObject(src);
      return src;
    }
    const seen = done.get(src);
    if (seen) return seen;
    const xattrs = src.xattrs.length === 0 ? NO_XATTRS : src.xattrs.map((x) => ({ name: escapeXattrName(x.name), value: x.value }));
    const out: Inode = inPlace ? Object.assign(src, { xattrs }) : { ...src, xattrs };
    const entriesIn = src.entries;
    done.set(src, out);
    if (isWhiteout(src)) {
      out.kind = "file";
      out.size = 0;
      delete out.rdevMajor;
      delete out.rdevMinor;
      delete out.data;
      out.xattrs = withXattrs(xattrs, WHITEOUT_FILE_XATTRS);
    } else if (src.kind === "file" && src.size > 0) {
      checkObject(src);
      out.xattrs.sort((a, b) => Buffer.compare(a.name, b.name));
      if (fileXattrs) out.xattrs = objectFileXattrs(out);
    } else out.xattrs.sort((a, b) => Buffer.compare(a.name, b.name));
    if (src.kind === "dir") {
      // Whiteouts are told apart before their conversion (in place, they become files).
      const whiteouts = (entriesIn ?? []).some((e) => isWhiteout(e.inode));
      // In place the entries are converted where they are: a new Entry per name was garbage at the
      // image phase's peak.
      if (inPlace) for (const e of entriesIn ?? []) convert(e.inode);
      else out.entries = (entriesIn ?? []).map((e): Entry => ({ name: e.name, inode: convert(e.inode) }));
      if (whiteouts) out.xattrs = withXattrs(out.xattrs, WHITEOUT_DIR_XATTRS);
    }
    return out;
  };
  return convert(root);
}
