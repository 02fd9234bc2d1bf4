// One tree node → its tar header blocks, written the same way on every machine so that a layer's
// digest depends only on the tree: ustar with PAX records only where ustar cannot say it (long
// names, xattrs, large sizes), mtimes clamped to SOURCE_DATE_EPOCH, numeric owners with no user or
// group names, and no atime/ctime records. The reader side is ../tar/.
import { BLOCK, type TarHeader } from "../tar/header.ts";
import type { Inode } from "../tree/model.ts";

/** What an entry is in the archive; a hardlink names the path it links to. */
export type TarEntryKind =
  | { kind: "inode"; inode: Inode }
  | { kind: "hardlink"; target: Buffer; inode: Inode };

const TYPE: Record<string, string> = { file: "0", dir: "5", symlink: "2", chr: "3", blk: "4", fifo: "6" };
/** The largest value an 8-byte (7 octal digits) and a 12-byte (11 digits) field hold. */
const MAX_OCTAL_8 = 0o7777777;
const MAX_OCTAL_12 = 0o77777777777;

function octal(b: Buffer, off: number, len: number, v: number): void {
  b.write(v.toString(8).padStart(len - 1, "0") + "\0", off, len, "latin1");
}

/** A PAX record: "<len> <key>=<value>\n", where <len> counts itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

const pad = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK;

function header(f: TarHeader): Buffer {
  const b = Buffer.alloc(BLOCK);
  f.name.copy(b, 0, 0, Math.min(100, f.name.length));
  octal(b, 100, 8, f.mode);
  octal(b, 108, 8, f.uid);
  octal(b, 116, 8, f.gid);
  octal(b, 124, 12, f.size);
  octal(b, 136, 12, f.mtime);
  b.write(f.type, 156, 1, "latin1");
  f.linkname.copy(b, 157, 0, Math.min(100, f.linkname.length));
  b.write("ustar\x0000", 257, 8, "latin1");
  octal(b, 329, 8, f.devmajor);
  octal(b, 337, 8, f.devminor);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return b;
}

/**
 * The header blocks of one entry (a PAX extended header first when needed). `path` is relative, with
 * no leading "./" or "/"; directories get a trailing "/". The body of a regular file (inode.size
 * bytes, then padding to 512) is the caller's to write.
 */
export function entryHeader(path: Buffer, entry: TarEntryKind, epoch: number): Buffer {
  const inode = entry.inode;
  const type = entry.kind === "hardlink" ? "1" : TYPE[inode.kind];
  if (type === undefined) throw new Error(`tar: ${path.toString()}: a ${inode.kind} cannot be archived`);
  const name = inode.kind === "dir" && entry.kind === "inode" ? Buffer.concat([path, Buffer.from("/")]) : path;
  const linkname = entry.kind === "hardlink" ? entry.target : inode.kind === "symlink" ? inode.target! : Buffer.alloc(0);
  const size = entry.kind === "inode" && inode.kind === "file" ? inode.size : 0;
  const recs: Buffer[] = [];
  // Non-ASCII names go to PAX as well: ustar fields are bytes, but readers disagree on their charset.
  const ascii = (x: Buffer): boolean => x.every((c) => c < 0x80);
  if (name.length > 100 || !ascii(name)) recs.push(paxRecord("path", name));
  if (linkname.length > 100 || !ascii(linkname)) recs.push(paxRecord("linkpath", linkname));
  if (size > MAX_OCTAL_12) recs.push(paxRecord("size", Buffer.from(String(size))));
  if (inode.uid > MAX_OCTAL_8) recs.push(paxRecord("uid", Buffer.from(String(inode.uid))));
  if (inode.gid > MAX_OCTAL_8) recs.push(paxRecord("gid", Buffer.from(String(inode.gid))));
  if (entry.kind === "inode") for (const x of inode.xattrs) recs.push(paxRecord(`SCHILY.xattr.${x.name.toString("latin1")}`, x.value));
  const mtime = Math.max(0, Math.min(inode.mtimeSec, epoch));
  const fields: TarHeader = {
    name, mode: inode.perm, uid: Math.min(inode.uid, MAX_OCTAL_8), gid: Math.min(inode.gid, MAX_OCTAL_8),
    size: Math.min(size, MAX_OCTAL_12), mtime, type, linkname,
    devmajor: inode.rdevMajor ?? 0, devminor: inode.rdevMinor ?? 0,
  };
  const main = header(fields);
  if (recs.length === 0) return main;
  const body = Buffer.concat(recs);
  const pax = header({ ...fields, name: Buffer.from("PaxHeader"), mode: 0o644, uid: 0, gid: 0, size: body.length, type: "x", linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 });
  return Buffer.concat([pax, body, Buffer.alloc(pad(body.length)), main]);
}

/** The zero padding after a body of `size` bytes. */
export const bodyPadding = (size: number): Buffer => Buffer.alloc(pad(size));

/** The end of an archive: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
