// A push parser for tar streams (ustar, GNU long names, PAX with SCHILY.xattr.*): feed it chunks as
// they come out of the decompressor, and it calls back once per entry, then hands the entry's bytes
// to the sink the callback returned. Nothing is buffered but one header and the metadata records,
// so a layer of any size is parsed in constant memory.
import type { Xattr } from "../tree/model.ts";
import { sortXattrs } from "../tree/model.ts";
import { BLOCK, isZeroBlock, parseHeader, type TarHeader } from "./header.ts";
import { parsePax, parsePaxTime, type PaxRecords } from "./pax.ts";

export type TarEntryType = "file" | "link" | "symlink" | "chr" | "blk" | "dir" | "fifo";

export interface TarEntry {
  /** Normalised path relative to the archive root: no leading "/" or "./", no trailing "/"; "" is the root itself. */
  path: Buffer;
  type: TarEntryType;
  /** Permission bits (mode & 0o7777). */
  perm: number;
  uid: number;
  gid: number;
  /** Regular files: the number of content bytes that follow. */
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** Hardlinks: the (normalised) path linked to; symlinks: the raw target. */
  linkname: Buffer;
  devmajor: number;
  devminor: number;
  xattrs: Xattr[];
}

/** Receives one regular file's bytes, in order. */
export interface BodySink {
  write(chunk: Uint8Array): void;
  end(): void;
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file", "\0": "file", "7": "file", "1": "link", "2": "symlink", "3": "chr", "4": "blk", "5": "dir", "6": "fifo",
};
/** Metadata bodies are small; this bounds what a hostile archive can make us hold. */
const MAX_META = 64 << 20;
const SCHILY_XATTR = "SCHILY.xattr.";
const PER_ENTRY = new Set(["path", "linkpath", "size"]);

/** Linux limits (PATH_MAX with its NUL, NAME_MAX): a longer name could not be created or looked up. */
const PATH_MAX = 4095;
const NAME_MAX = 255;
/** dev_t as Linux encodes it: a 12-bit major and a 20-bit minor number. */
const MAJOR_MAX = 0xfff;
const MINOR_MAX = 0xfffff;
const ID_MAX = 0xffffffff;

const show = (b: Buffer): string => JSON.stringify(b.toString());

/** Strips "./" and "/" prefixes and trailing slashes; refuses ".." so no entry can point outside the root. */
export function normalizePath(raw: Buffer, what = `tar entry ${show(raw)}`): Buffer {
  if (raw.includes(0)) throw new Error(`${what}: NUL byte in path`);
  if (raw.length > PATH_MAX) throw new Error(`${what}: path of ${raw.length} bytes is longer than ${PATH_MAX}`);
  const parts = raw.toString("latin1").split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Error(`${what}: ".." in path`);
  if (parts.some((p) => p.length > NAME_MAX)) throw new Error(`${what}: a name longer than ${NAME_MAX} bytes`);
  return Buffer.from(parts.join("/"), "latin1");
}

type State = { kind: "header" } | { kind: "body"; left: number; pad: number; sink?: BodySink; meta?: Buffer[]; metaType?: string } | { kind: "pad"; left: number } | { kind: "end" };

export class TarReader {
  private state: State = { kind: "header" };
  private head = Buffer.alloc(BLOCK);
  private headLen = 0;
  private zeroBlocks = 0;
  private pax: PaxRecords | undefined;
  private global: PaxRecords = new Map();
  private longName: Buffer | undefined;
  private longLink: Buffer | undefined;
  private entries = 0;
  /** Bytes of PAX records held for the next entry and for all entries (global): bounded like one metadata body. */
  private pending = 0;

  constructor(private onEntry: (e: TarEntry) => BodySink | undefined) {}

  push(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      const s = this.state;
      if (s.kind === "end") return; // padding after the end-of-archive blocks
      if (s.kind === "header") {
        const n = Math.min(BLOCK - this.headLen, chunk.length - off);
        this.head.set(chunk.subarray(off, off + n), this.headLen);
        this.headLen += n;
        off += n;
        if (this.headLen === BLOCK) {
          this.headLen = 0;
          this.header();
        }
      } else if (s.kind === "body") {
        const n = Math.min(s.left, chunk.length - off);
        const part = chunk.subarray(off, off + n);
        if (s.sink) s.sink.write(part);
        else if (s.meta) s.meta.push(Buffer.from(part));
        s.left -= n;
        off += n;
        if (s.left === 0) this.endBody(s);
      } else {
        const n = Math.min(s.left, chunk.length - off);
        s.left -= n;
        off += n;
        if (s.left === 0) this.state = { kind: "header" };
      }
    }
  }

  /**
   * Call when the input is exhausted: a stream cut inside an entry is an error. A stream that stops
   * after the last entry's bytes, without padding or end blocks, is complete: umoci 0.4's `insert`
   * writes such layers, and umoci's own unpack accepts them.
   */
  end(): void {
    const s = this.state;
    if (s.kind === "body" || this.headLen !== 0) throw new Error(`tar stream truncated (after ${this.entries} entries)`);
    if (this.pax || this.longName || this.longLink) throw new Error("tar stream truncated: metadata header without its entry");
  }

  private header(): void {
    if (isZeroBlock(this.head)) {
      // Two zero blocks end the archive; one alone is tolerated (some writers stop there).
      if (++this.zeroBlocks === 2) this.state = { kind: "end" };
      return;
    }
    this.zeroBlocks = 0;
    const h = parseHeader(this.head);
    const padOf = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;
    if (h.type === "x" || h.type === "g" || h.type === "L" || h.type === "K") {
      // Records accumulate until the entry they describe (global ones for good): bound the sum, or
      // a stream of metadata headers without entries would grow without limit.
      this.pending += h.size;
      if (h.size > MAX_META || this.pending > MAX_META) throw new Error(`tar: metadata headers of ${this.pending} bytes in a row are too large (after ${this.entries} entries)`);
      const s: State = { kind: "body", left: h.size, pad: padOf(h.size), meta: [], metaType: h.type };
      this.state = s;
      if (h.size === 0) this.endBody(s);
      return;
    }
    const e = this.entry(h);
    this.entries++;
    // Hardlinks and other non-files carry no data, whatever their size field says (some writers
    // record the target's size on a hardlink).
    const size = e.type === "file" ? e.size : 0;
    const sink = this.onEntry(e);
    const s: State = { kind: "body", left: size, pad: padOf(size), sink };
    this.state = s;
    if (size === 0) this.endBody(s);
  }

  private endBody(s: Extract<State, { kind: "body" }>): void {
    if (s.meta) {
      const body = Buffer.concat(s.meta);
      if (s.metaType === "x") this.pax = new Map([...(this.pax ?? []), ...parsePax(body)]);
      // A global header's path, linkpath or size would name every entry alike: only attributes carry over.
      else if (s.metaType === "g") {
        for (const [k, v] of parsePax(body)) if (!PER_ENTRY.has(k)) this.global.set(k, v);
      }
      else if (s.metaType === "L") this.longName = trimNul(body);
      else this.longLink = trimNul(body);
    } else s.sink?.end();
    this.state = s.pad ? { kind: "pad", left: s.pad } : { kind: "header" };
  }

  private entry(h: TarHeader): TarEntry {
    const type = TYPES[h.type];
    const rec = new Map([...this.global, ...(this.pax ?? [])]);
    const rawName = rec.get("path") ?? this.longName ?? h.name;
    if (!type) {
      const what = h.type === "S" ? "GNU sparse file" : `type ${JSON.stringify(h.type)}`;
      throw new Error(`tar entry ${JSON.stringify(rawName.toString())}: unsupported ${what}`);
    }
    for (const k of rec.keys()) if (k.startsWith("GNU.sparse.")) throw new Error(`tar entry ${JSON.stringify(rawName.toString())}: unsupported PAX sparse file`);
    const what = `tar entry ${show(rawName)}`;
    const num = (key: string, dflt: number, max = Number.MAX_SAFE_INTEGER) => {
      const v = rec.get(key);
      let n = dflt;
      if (v !== undefined) {
        const t = v.toString("latin1");
        if (!/^\d+$/.test(t)) throw new Error(`${what}: bad PAX ${key} ${JSON.stringify(t)}`);
        n = Number(t);
      }
      // An id or device number the image cannot hold would be stored truncated, as another one.
      if (!Number.isSafeInteger(n) || n > max) throw new Error(`${what}: ${key} ${v === undefined ? n : v.toString("latin1")} is out of range (at most ${max})`);
      return n;
    };
    const [mtimeSec, mtimeNsec] = rec.has("mtime") ? parsePaxTime(rec.get("mtime")!.toString("latin1"), what) : [h.mtime, 0];
    const xattrs: Xattr[] = [];
    for (const [k, v] of rec) if (k.startsWith(SCHILY_XATTR)) xattrs.push({ name: Buffer.from(k.slice(SCHILY_XATTR.length), "latin1"), value: v });
    const linkRaw = rec.get("linkpath") ?? this.longLink ?? h.linkname;
    const dev = type === "chr" || type === "blk";
    if (type === "symlink" && (linkRaw.includes(0) || linkRaw.length > PATH_MAX)) throw new Error(`${what}: symlink target has a NUL byte or is longer than ${PATH_MAX} bytes`);
    const e: TarEntry = {
      path: normalizePath(rawName, what),
      type,
      perm: h.mode & 0o7777,
      uid: num("uid", h.uid, ID_MAX),
      gid: num("gid", h.gid, ID_MAX),
      size: num("size", h.size),
      mtimeSec,
      mtimeNsec,
      linkname: type === "link" ? normalizePath(linkRaw, `${what}: hardlink target ${show(linkRaw)}`) : Buffer.from(linkRaw),
      devmajor: dev ? num("SCHILY.devmajor", h.devmajor, MAJOR_MAX) : 0,
      devminor: dev ? num("SCHILY.devminor", h.devminor, MINOR_MAX) : 0,
      xattrs: sortXattrs(xattrs),
    };
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    this.pending = [...this.global.values()].reduce((n, v) => n + v.length, 0);
    return e;
  }
}

function trimNul(b: Buffer): Buffer {
  const i = b.indexOf(0);
  return i < 0 ? b : b.subarray(0, i);
}
