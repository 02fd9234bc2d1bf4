// Reads a directory tree from disk into the tree model. Names stay raw bytes (paths are Buffers
// throughout) so non-UTF-8 names survive. Hardlinks become one shared Inode.
import { readdirSync, readlinkSync, type BigIntStats } from "node:fs";
import type { Entry, Inode, NodeKind, Xattr } from "./model.ts";
import { NO_XATTRS, sortEntries, sortXattrs } from "./model.ts";
import { splitNs } from "./time.ts";
import { EntryProbe, getXattr, type EntryStat } from "../system/libc.ts";
import { SPARSE_MIN_SIZE } from "../erofs/data.ts";

/**
 * What identifies a file's content on disk without reading it (ostree's "devino" key plus times).
 * Plain numbers, held in the object itself: a scan keeps one per file, and five BigInts in a nested
 * object (or strings built from them) cost more than the rest of the file's model (issue 13).
 * Device and inode numbers beyond 2^53 would lose precision; no Linux filesystem hands them out.
 */
export interface StatKey {
  dev: number;
  ino: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

export interface ScannedFile extends StatKey {
  inode: Inode;
  path: Buffer;
}

export interface ScanResult {
  root: Inode;
  /** Every distinct regular-file inode with where it was read from. */
  files: ScannedFile[];
  fileCount: number;
  totalBytes: number;
  /**
   * An upper bound on the file bytes a full erofs image stores: files of SPARSE_MIN_SIZE and up
   * keep their holes (all-zero chunks), so they count only what the disk has allocated.
   */
  storedBytes: number;
}

const S_IFMT = 0o170000;
const KINDS: Record<number, NodeKind> = {
  0o100000: "file", 0o040000: "dir", 0o120000: "symlink", 0o020000: "chr",
  0o060000: "blk", 0o010000: "fifo", 0o140000: "sock",
};

const SLASH = Buffer.from("/");
/** How many directories a scan holds open at once, one per level. */
export const OPEN_DEPTH = 64;

export function statKey(st: BigIntStats): StatKey {
  const [mtimeSec, mtimeNsec] = splitNs(st.mtimeNs);
  const [ctimeSec, ctimeNsec] = splitNs(st.ctimeNs);
  return { dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeSec, mtimeNsec, ctimeSec, ctimeNsec };
}

/** How many numbers `putStatKey` writes. */
export const STAT_KEY_FIELDS = 7;

/** A key's numbers into `a` from `at`, in StatKey's order: the devino cache's records and the ingest's batches hold them so. */
export function putStatKey(a: Float64Array, at: number, k: StatKey): void {
  a[at] = k.dev;
  a[at + 1] = k.ino;
  a[at + 2] = k.size;
  a[at + 3] = k.mtimeSec;
  a[at + 4] = k.mtimeNsec;
  a[at + 5] = k.ctimeSec;
  a[at + 6] = k.ctimeNsec;
}

/** Same size, mtime and ctime: the content has not been written since. */
export const sameStamp = (a: StatKey, b: StatKey): boolean =>
  a.size === b.size && a.mtimeSec === b.mtimeSec && a.mtimeNsec === b.mtimeNsec && a.ctimeSec === b.ctimeSec && a.ctimeNsec === b.ctimeNsec;

/** The file kind of a stat mode, or undefined for a type the model does not know. */
export const kindOf = (mode: bigint | number): NodeKind | undefined => KINDS[Number(mode) & S_IFMT];

function mtimeOf(st: BigIntStats): { mtimeSec: number; mtimeNsec: number } {
  const [mtimeSec, mtimeNsec] = splitNs(st.mtimeNs);
  return { mtimeSec, mtimeNsec };
}

/** The attributes every inode takes from lstat; kind-specific parts (data, target, rdev, entries) are the caller's. */
export function inodeFromStat(st: BigIntStats, kind: NodeKind, xattrs: Xattr[]): Inode {
  return {
    kind,
    perm: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    ...mtimeOf(st),
    xattrs,
    size: 0,
  };
}

function readXattrs(probe: EntryProbe, path: Buffer): Xattr[] {
  const names = probe.at(path).xattrNames();
  if (names.length === 0) return NO_XATTRS;
  // POSIX ACLs are stored as system.* xattrs; they are carried like any other xattr.
  return sortXattrs(names.map((name) => ({ name, value: getXattr(path, name) })));
}

const blankStat = (): EntryStat => ({
  mode: 0, nlink: 0, uid: 0, gid: 0, dev: 0, ino: 0, size: 0, blocks: 0, rdevMajor: 0, rdevMinor: 0,
  mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
});

/**
 * The bytes a full erofs image stores for a file of `size` with `blocks` 512-byte blocks allocated:
 * at most what the disk holds once the image drops holes, which it looks for from SPARSE_MIN_SIZE up.
 */
export const storedBound = (size: number, blocks: number): number => (size < SPARSE_MIN_SIZE ? size : Math.min(size, blocks * 512));

/**
 * Reads the tree under `rootPath` (Bun only: the per-entry syscalls go through bun:ffi). One stat
 * record is reused for every entry: each visit reads what it needs of it before it descends.
 * `bare` says a regular file is known to have no xattrs (the devino cache's word for a file unchanged
 * since it was last listed), so they are not listed again.
 */
export function scanTree(rootPath: string, bare?: (k: StatKey) => boolean): ScanResult {
  const files: ScannedFile[] = [];
  const links = new Map<string, Inode>();
  const probe = new EntryProbe();
  const st = blankStat();
  let fileCount = 0;
  let totalBytes = 0;
  let storedBytes = 0;

  const visit = (path: Buffer, depth: number): Inode => {
    const kind = kindOf(st.mode);
    if (!kind) throw new Error(`${path.toString()}: unsupported file type (mode ${st.mode.toString(8)})`);
    const linkKey = kind !== "dir" && st.nlink > 1 ? `${st.dev}:${st.ino}` : undefined;
    if (linkKey) {
      const seen = links.get(linkKey);
      if (seen) return seen;
    }
    const inode: Inode = {
      kind,
      perm: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtimeSec: st.mtimeSec,
      mtimeNsec: st.mtimeNsec,
      xattrs: kind === "file" && bare?.(st) ? NO_XATTRS : readXattrs(probe, path),
      size: 0,
    };
    if (linkKey) links.set(linkKey, inode);
    switch (kind) {
      case "file":
        inode.size = st.size;
        inode.data = { kind: "path", path };
        files.push({
          inode, path, dev: st.dev, ino: st.ino, size: st.size,
          mtimeSec: st.mtimeSec, mtimeNsec: st.mtimeNsec, ctimeSec: st.ctimeSec, ctimeNsec: st.ctimeNsec,
        });
        fileCount++;
        totalBytes += inode.size;
        storedBytes += storedBound(inode.size, st.blocks);
        break;
      case "symlink":
        inode.target = readlinkSync(path, { encoding: "buffer" });
        break;
      case "chr":
      case "blk":
        inode.rdevMajor = st.rdevMajor;
        inode.rdevMinor = st.rdevMinor;
        break;
      case "dir": {
        const entries: Entry[] = [];
        // The directory stays open while its subdirectories are read: up to OPEN_DEPTH levels, so a
        // pathologically deep tree cannot run out of descriptors. Below that, whole paths.
        const fd = depth < OPEN_DEPTH ? probe.openDir(path) : -1;
        try {
          for (const name of fd >= 0 ? probe.list(fd, path) : readdirSync(path, { encoding: "buffer" })) {
            const child = Buffer.concat([path, SLASH, name]);
            if (fd >= 0) probe.statAt(fd, name, child, st);
            else probe.at(child).stat(st);
            entries.push({ name, inode: visit(child, depth + 1) });
          }
        } finally {
          if (fd >= 0) probe.closeDir(fd);
        }
        inode.entries = sortEntries(entries);
        break;
      }
      default:
        break;
    }
    return inode;
  };

  const rootBuf = Buffer.from(rootPath.replace(/\/+$/, "") || "/");
  try {
    probe.at(rootBuf).stat(st);
  } catch (e) {
    throw new Error(`source ${rootPath}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such directory" : (e as Error).message}`);
  }
  if (kindOf(st.mode) !== "dir") throw new Error(`source ${rootPath}: not a directory`);
  return { root: visit(rootBuf, 0), files, fileCount, totalBytes, storedBytes };
}
