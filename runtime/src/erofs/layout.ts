// From the tree model to the list of on-disk inodes: breadth-first order (a directory's children get
// neighbouring nids, as mkcomposefs does), link counts, the build time and per-inode sizes.
import type { Entry, Inode } from "../tree/model.ts";
import { type DirPlan, planDir } from "./dirent.ts";

const DOT = Buffer.from(".");
const DOTDOT = Buffer.from("..");

/**
 * The image's inodes in breadth-first order, as columns indexed by node number (ino - 1): a typed
 * array per field instead of an object per inode. The object had 21 fields and cost ~230 bytes, a
 * `{ name, node }` record per directory entry another ~40: ~19 MB for a 70k-inode tree, held through
 * the image phase, staging's memory peak (issue 13).
 */
export class Nodes {
  readonly count: number;
  /** The model's inode of each node; a hardlinked inode is one node. */
  readonly inodes: readonly Inode[];
  readonly nlink: Uint32Array;
  readonly parent: Uint32Array;
  /** Directories: their entries ("." and ".." included, sorted by name) are child[childFrom[i], childFrom[i + 1]). */
  readonly childFrom: Uint32Array;
  readonly childNode: Uint32Array;
  readonly childName: readonly Buffer[];
  /** How many xattrs the inode has, and where their hashes start in the shared table. */
  readonly xattrCount: Uint32Array;
  readonly xattrAt: Uint32Array;
  readonly ibody: Uint32Array;
  readonly extended: Uint8Array;
  readonly layout: Uint8Array;
  /** i_size. */
  readonly size: Float64Array;
  /** i_u: raw_blkaddr, rdev or chunk format. */
  readonly iu: Uint32Array;
  /** Bytes after inode and xattrs in the metadata area: inline tail or chunk map. */
  readonly tailLen: Uint32Array;
  /** Blocks in the area after the metadata (directory blocks, long symlinks). */
  readonly trailingBlocks: Uint32Array;
  readonly offset: Float64Array;
  readonly nid: Float64Array;
  /** Inline tail content known before placement (symlink target, small file data). */
  readonly tail = new Map<number, Buffer>();
  readonly chunkMap = new Map<number, Uint32Array>();
  readonly dirPlan = new Map<number, DirPlan>();

  constructor(inodes: Inode[], nlink: Uint32Array, parent: Uint32Array, childFrom: Uint32Array, childNode: Uint32Array, childName: Buffer[]) {
    const n = (this.count = inodes.length);
    this.inodes = inodes;
    this.nlink = nlink;
    this.parent = parent;
    this.childFrom = childFrom;
    this.childNode = childNode;
    this.childName = childName;
    this.xattrCount = new Uint32Array(n);
    this.xattrAt = new Uint32Array(n);
    this.ibody = new Uint32Array(n);
    this.extended = new Uint8Array(n);
    this.layout = new Uint8Array(n);
    this.size = new Float64Array(n);
    this.iu = new Uint32Array(n);
    this.tailLen = new Uint32Array(n);
    this.trailingBlocks = new Uint32Array(n);
    this.offset = new Float64Array(n);
    this.nid = new Float64Array(n);
  }
}

function checkName(name: Buffer): void {
  const bad =
    name.length === 0 ||
    name.length > 255 ||
    name.indexOf(0x2f) >= 0 ||
    name.indexOf(0) >= 0 ||
    (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e)));
  if (bad) throw new Error(`invalid file name ${JSON.stringify(name.toString("latin1"))} (${name.length} bytes)`);
}

/** The model keeps entries sorted; only sort (a copy) when a caller did not. */
function sortedEntries(entries: readonly Entry[]): readonly Entry[] {
  for (let i = 1; i < entries.length; i++)
    if (Buffer.compare(entries[i - 1]!.name, entries[i]!.name) > 0) return [...entries].sort((a, b) => Buffer.compare(a.name, b.name));
  return entries;
}

/** Entries and directories under `root`: bounds for the columns, which are sized before the walk. */
function countTree(root: Inode): { entries: number; dirs: number } {
  let entries = 0;
  let dirs = 0;
  // A directory met twice (linked twice, or inside itself) is counted once: collect() refuses it.
  const seen = new Set<Inode>([root]);
  const stack: Inode[] = [root];
  while (stack.length > 0) {
    const d = stack.pop()!;
    dirs++;
    for (const e of d.entries ?? []) {
      entries++;
      if (e.inode.kind === "dir" && !seen.has(e.inode)) {
        seen.add(e.inode);
        stack.push(e.inode);
      }
    }
  }
  return { entries, dirs };
}

/** Unique inodes in breadth-first order; hardlinks are found by object identity. */
export function collect(root: Inode): Nodes {
  if (root.kind !== "dir") throw new Error("the root of an EROFS image must be a directory");
  // A hardlink is one node for several entries, so entries + 1 bounds the nodes; every directory
  // adds "." and "..".
  const bound = countTree(root);
  const inodes: Inode[] = [];
  const nlink = new Uint32Array(bound.entries + 1);
  const parent = new Uint32Array(bound.entries + 1);
  const childFrom = new Uint32Array(bound.entries + 2);
  const childNode = new Uint32Array(bound.entries + 2 * bound.dirs);
  const childName: Buffer[] = [];
  const byInode = new Map<Inode, number>();
  const make = (inode: Inode, up: number): number => {
    const i = inodes.length;
    inodes.push(inode);
    nlink[i] = inode.kind === "dir" ? 2 : 1;
    parent[i] = up;
    byInode.set(inode, i);
    return i;
  };
  make(root, 0);
  const child = (name: Buffer, node: number) => {
    childNode[childName.length] = node;
    childName.push(name);
  };
  for (let dir = 0; dir < inodes.length; dir++) {
    childFrom[dir] = childName.length;
    const inode = inodes[dir]!;
    if (inode.kind !== "dir") continue;
    const entries = sortedEntries(inode.entries ?? []);
    // "." and ".." sort among the names: "!" and "-" come before both, ".#x" between them.
    let dot = false;
    let dotdot = false;
    for (let j = 0; j < entries.length; j++) {
      const e = entries[j]!;
      checkName(e.name);
      if (j > 0 && e.name.equals(entries[j - 1]!.name)) throw new Error(`duplicate name ${e.name.toString("latin1")}`);
      if (!dot && Buffer.compare(e.name, DOT) > 0) {
        child(DOT, dir);
        dot = true;
      }
      if (!dotdot && Buffer.compare(e.name, DOTDOT) > 0) {
        child(DOTDOT, parent[dir]!);
        dotdot = true;
      }
      let c = byInode.get(e.inode);
      if (c !== undefined) {
        if (inodes[c]!.kind === "dir") throw new Error(`directory ${e.name.toString("latin1")} is linked twice`);
        nlink[c]!++;
      } else c = make(e.inode, dir);
      if (e.inode.kind === "dir") nlink[dir]!++;
      child(e.name, c);
    }
    if (!dot) child(DOT, dir);
    if (!dotdot) child(DOTDOT, parent[dir]!);
  }
  const count = inodes.length;
  childFrom[count] = childName.length;
  const nodes = new Nodes(inodes, nlink.subarray(0, count), parent.subarray(0, count), childFrom.subarray(0, count + 1), childNode.subarray(0, childName.length), childName);
  for (let i = 0; i < count; i++) {
    if (inodes[i]!.kind === "dir") nodes.dirPlan.set(i, planDir(childName.slice(nodes.childFrom[i]!, nodes.childFrom[i + 1]!)));
  }
  return nodes;
}

/** The most common mtime, so that as many inodes as possible can use the compact form; ties go to the earliest. */
export function buildTime(nodes: Nodes): { sec: number; nsec: number } {
  // Sorting and counting runs allocates nothing per distinct time, unlike a map of maps.
  const times = [...nodes.inodes].sort((a, b) => a.mtimeSec - b.mtimeSec || a.mtimeNsec - b.mtimeNsec);
  let best = { sec: 0, nsec: 0, n: 0 };
  for (let i = 0; i < times.length; ) {
    const t = times[i]!;
    let j = i + 1;
    while (j < times.length && times[j]!.mtimeSec === t.mtimeSec && times[j]!.mtimeNsec === t.mtimeNsec) j++;
    if (j - i > best.n) best = { sec: t.mtimeSec, nsec: t.mtimeNsec, n: j - i };
    i = j;
  }
  return { sec: best.sec, nsec: best.nsec };
}

/** i_size before any layout decision: it never depends on where things land. */
export function logicalSize(nodes: Nodes, i: number): number {
  const inode = nodes.inodes[i]!;
  switch (inode.kind) {
    case "file":
      return inode.size;
    case "dir":
      return nodes.dirPlan.get(i)!.size;
    case "symlink":
      return inode.target?.length ?? 0;
    default:
      return 0;
  }
}
