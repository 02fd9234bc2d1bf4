// Compares two trees entry by entry: type, mode, owner, size, mtime (ns), rdev, link counts of
// files, symlink targets, content digests and xattrs. Returns the differences as lines, so a test
// failure says exactly what differs.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type BigIntStats } from "node:fs";

interface Rec {
  type: string; mode: string; uid: string; gid: string; size: string; mtime: string; rdev: string;
  nlink: string; target: string; sha: string;
}

function contentHash(path: Buffer): string {
  const h = createHash("sha256");
  const fd = openSync(path, "r");
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

function record(path: Buffer, st: BigIntStats, opts: CompareOptions): Rec {
  const fmt = Number(st.mode) & 0o170000;
  const type = { 0o100000: "file", 0o040000: "dir", 0o120000: "symlink", 0o020000: "chr", 0o060000: "blk", 0o010000: "fifo", 0o140000: "sock" }[fmt] ?? "?";
  return {
    type,
    mode: (Number(st.mode) & 0o7777).toString(8),
    uid: String(st.uid),
    gid: String(st.gid),
    size: type === "file" || type === "symlink" ? String(st.size) : "-",
    mtime: opts.ignoreMtime?.(type) ? "-" : String(st.mtimeNs),
    rdev: type === "chr" || type === "blk" ? String(st.rdev) : "-",
    nlink: type === "file" ? String(st.nlink) : "-",
    target: type === "symlink" ? readlinkSync(path, { encoding: "buffer" }).toString("hex") : "-",
    sha: type === "file" ? contentHash(path) : "-",
  };
}

function walk(root: Buffer, opts: CompareOptions): Map<string, Rec> {
  const out = new Map<string, Rec>();
  const visit = (rel: Buffer) => {
    const abs = Buffer.concat([root, rel]);
    const st = lstatSync(abs, { bigint: true });
    const key = rel.toString("latin1") || "/";
    // A skipped directory's own record is left out; its children are still compared.
    if (!opts.skip?.(key)) out.set(key, record(abs, st, opts));
    if (st.isDirectory()) {
      for (const name of readdirSync(abs, { encoding: "buffer" })) visit(Buffer.concat([rel, Buffer.from("/"), name]));
    }
  };
  visit(Buffer.alloc(0));
  return out;
}

/** All xattrs of a tree as "path: name=hexvalue" lines, paths relative to the root. */
export function xattrDump(root: string): string[] {
  const out = execFileSync("getfattr", ["-R", "-d", "-h", "-m", "-", "-e", "hex", "--absolute-names", root], { maxBuffer: 1 << 28 }).toString("latin1");
  const lines: string[] = [];
  let file = "";
  for (const line of out.split("\n")) {
    if (line.startsWith("# file: ")) file = line.slice(8).slice(root.replace(/\/$/, "").length) || "/";
    else if (line.includes("=")) lines.push(`${file}: ${line}`);
  }
  return lines.sort();
}

export interface CompareOptions {
  /** Leaves an entry's own record and xattrs out of the comparison (children of a directory are still compared). */
  skip?: (relPath: string) => boolean;
  ignoreMtime?: (type: string) => boolean;
  /** Compare xattrs too (needs both trees to expose the same namespaces). */
  xattrs?: boolean;
}

export function compareTrees(a: string, b: string, opts: CompareOptions = {}): string[] {
  const ta = walk(Buffer.from(a), opts);
  const tb = walk(Buffer.from(b), opts);
  const diffs: string[] = [];
  for (const [k, ra] of ta) {
    const rb = tb.get(k);
    if (!rb) { diffs.push(`${k}: missing in ${b}`); continue; }
    for (const f of Object.keys(ra) as (keyof Rec)[]) {
      if (k === "/" && (f === "mtime" || f === "nlink")) continue;
      if (ra[f] !== rb[f]) diffs.push(`${k}: ${f} ${ra[f]} != ${rb[f]}`);
    }
  }
  for (const k of tb.keys()) if (!ta.has(k)) diffs.push(`${k}: extra in ${b}`);
  if (opts.xattrs) {
    const xa = xattrDump(a).filter((l) => !opts.skip?.(l.split(": ")[0]!));
    const xb = new Set(xattrDump(b).filter((l) => !opts.skip?.(l.split(": ")[0]!)));
    for (const l of xa) if (!xb.has(l)) diffs.push(`xattr missing or different: ${l}`);
    const sa = new Set(xa);
    for (const l of xb) if (!sa.has(l)) diffs.push(`xattr extra: ${l}`);
  }
  return diffs;
}
