// The in-memory model of a filesystem tree, shared by the scanner (which builds it from a directory or
// tarball), the composefs/erofs/squashfs writers (which encode it) and the tests.
//
// This is a plain interface rather than a zod schema on purpose: a 60k-file tree is walked several
// times while staging and parsing each node through zod would cost more than the hashing. Everything
// that crosses a process or disk boundary (manifests, CLI output) is zod-validated instead.

/** File kinds, named as in `find -type`. */
export type NodeKind = "file" | "dir" | "symlink" | "chr" | "blk" | "fifo" | "sock";

/** Where a regular file's bytes are. */
export type FileData =
  /** Content lives in the object store under this fs-verity digest (hex). composefs images carry no data. */
  | { kind: "object"; digest: string }
  /** Content is read from this path when the image is written (full erofs/squashfs images). */
  | { kind: "path"; path: Buffer }
  /** Small content held in memory (tests, tar sources). */
  | { kind: "bytes"; bytes: Uint8Array };

/**
 * One inode. Hardlinks are the same `Inode` object referenced by several `Entry`s; writers detect
 * them by identity and count links themselves.
 */
export interface Inode {
  kind: NodeKind;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  perm: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec: number;
  /** Extended attributes exactly as on the source, full names ("user.foo", "security.capability"), sorted by name bytes. */
  xattrs: Xattr[];
  /** Regular files: logical size in bytes (may exceed 2^32; stays exact below 2^53). */
  size: number;
  /** Regular files only. */
  data?: FileData;
  /** Symlinks: target bytes. */
  target?: Buffer;
  /** chr/blk: device numbers. */
  rdevMajor?: number;
  rdevMinor?: number;
  /** Directories: entries sorted by name bytes (Buffer.compare), without "." and "..". */
  entries?: Entry[];
}

export interface Entry {
  /** Raw name bytes: names need not be UTF-8. */
  name: Buffer;
  inode: Inode;
}

export interface Xattr {
  name: Buffer;
  value: Buffer;
}

/**
 * The xattr list of every inode that has none (most of a tree): one shared, frozen array instead of
 * an empty one per inode (70k arrays for a 60k-file tree, issue 13). Replace an inode's list, never
 * push into it.
 */
export const NO_XATTRS: Xattr[] = Object.freeze([]) as unknown as Xattr[];

export const compareNames = (a: Buffer, b: Buffer): number => Buffer.compare(a, b);

export function sortEntries(entries: Entry[]): Entry[] {
  return entries.sort((a, b) => compareNames(a.name, b.name));
}

export function sortXattrs(xattrs: Xattr[]): Xattr[] {
  return xattrs.sort((a, b) => compareNames(a.name, b.name));
}

/**
 * Every distinct regular file of the tree (a hardlinked file once), without building paths: walk()
 * makes a Buffer per entry, which was most of the 200 ms a re-stage spent listing its objects.
 */
export function fileInodesOf(root: Inode, visit: (inode: Inode) => void): void {
  const seen = new Set<Inode>();
  const stack: Inode[] = [root];
  while (stack.length > 0) {
    for (const e of stack.pop()!.entries ?? []) {
      const inode = e.inode;
      if (inode.kind === "dir") stack.push(inode);
      else if (inode.kind === "file" && !seen.has(inode)) {
        seen.add(inode);
        visit(inode);
      }
    }
  }
}

/** Depth-first walk with the path (bytes, "/"-joined, root = ""). */
export function* walk(root: Inode, prefix: Buffer = Buffer.alloc(0)): Generator<[Buffer, Inode]> {
  yield [prefix, root];
  for (const e of root.entries ?? []) {
    const p = Buffer.concat([prefix, Buffer.from("/"), e.name]);
    if (e.inode.kind === "dir") yield* walk(e.inode, p);
    else yield [p, e.inode];
  }
}
