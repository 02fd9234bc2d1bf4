// From the tree model to the list of on-disk inodes: breadth-first order (a directory's children get
// neighbouring nids, as mkcomposefs does), link counts, the build time and per-inode sizes.
import type { Entry, Inode, Xattr } from "../tree/model.ts";
import { type DirPlan, planDir } from "./dirent.ts";

export interface Child {
  name: Buffer;
  node: Node;
}

export interface Node {
  inode: Inode;
  ino: number;
  nlink: number;
  parent: Node;
  /** Directories: entries sorted by name, "." and ".." included. */
  children: Child[];
  /** How many xattrs the inode has, and where their hashes start in the shared table. */
  xattrCount: number;
  xattrAt: number;
  /** Shared xattr ids, and the entries stored inline beside them; none shared: `inline` is undefined and every entry is inline. */
  shared: number[];
  inline: readonly Xattr[] | undefined;
  ibody: number;
  extended: boolean;
  layout: number;
  /** i_size. */
  size: number;
  /** i_u: raw_blkaddr, rdev or chunk format. */
  iu: number;
  /** Bytes after inode and xattrs in the metadata area: inline tail or chunk map. */
  tailLen: number;
  /** Inline tail content known before placement (symlink target, small file data). */
  tail?: Buffer;
  chunkMap?: Uint32Array;
  /** Blocks in the area after the metadata (directory blocks, long symlinks). */
  trailingBlocks: number;
  dirPlan?: DirPlan;
  offset: number;
  nid: number;
}

const NO_CHILDREN: Child[] = [];
const NO_IDS: number[] = [];
const DOT = Buffer.from(".");
const DOTDOT = Buffer.from("..");

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

/** Unique inodes in breadth-first order; hardlinks are found by object identity. */
export function collect(root: Inode): Node[] {
  if (root.kind !== "dir") throw new Error("the root of an EROFS image must be a directory");
  const nodes: Node[] = [];
  const byInode = new Map<Inode, Node>();
  const make = (inode: Inode, parent: Node | undefined): Node => {
    // Every field set up front, so all nodes share one object shape.
    const n: Node = {
      inode,
      ino: nodes.length + 1,
      nlink: inode.kind === "dir" ? 2 : 1,
      parent: parent!,
      children: NO_CHILDREN,
      xattrCount: 0,
      xattrAt: 0,
      shared: NO_IDS,
      inline: undefined,
      ibody: 0,
      extended: false,
      layout: 0,
      size: 0,
      iu: 0,
      tailLen: 0,
      tail: undefined,
      chunkMap: undefined,
      trailingBlocks: 0,
      dirPlan: undefined,
      offset: 0,
      nid: 0,
    };
    if (!parent) n.parent = n;
    nodes.push(n);
    byInode.set(inode, n);
    return n;
  };
  make(root, undefined);
  for (let i = 0; i < nodes.length; i++) {
    const dir = nodes[i]!;
    if (dir.inode.kind !== "dir") continue;
    const entries = sortedEntries(dir.inode.entries ?? []);
    // "." and ".." sort among the names: "!" and "-" come before both, ".#x" between them.
    const children: Child[] = [];
    let dot = false;
    let dotdot = false;
    for (let j = 0; j < entries.length; j++) {
      const e = entries[j]!;
      checkName(e.name);
      if (j > 0 && e.name.equals(entries[j - 1]!.name)) throw new Error(`duplicate name ${e.name.toString("latin1")}`);
      if (!dot && Buffer.compare(e.name, DOT) > 0) {
        children.push({ name: DOT, node: dir });
        dot = true;
      }
      if (!dotdot && Buffer.compare(e.name, DOTDOT) > 0) {
        children.push({ name: DOTDOT, node: dir.parent });
        dotdot = true;
      }
      let c = byInode.get(e.inode);
      if (c) {
        if (c.inode.kind === "dir") throw new Error(`directory ${e.name.toString("latin1")} is linked twice`);
        c.nlink++;
      } else c = make(e.inode, dir);
      if (c.inode.kind === "dir") dir.nlink++;
      children.push({ name: e.name, node: c });
    }
    if (!dot) children.push({ name: DOT, node: dir });
    if (!dotdot) children.push({ name: DOTDOT, node: dir.parent });
    dir.children = children;
    dir.dirPlan = planDir(dir.children.map((c) => c.name));
  }
  return nodes;
}

/** The most common mtime, so that as many inodes as possible can use the compact form; ties go to the earliest. */
export function buildTime(nodes: readonly Node[]): { sec: number; nsec: number } {
  // Sorting and counting runs allocates nothing per distinct time, unlike a map of maps.
  const times = nodes.map((n) => n.inode).sort((a, b) => a.mtimeSec - b.mtimeSec || a.mtimeNsec - b.mtimeNsec);
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
export function logicalSize(n: Node): number {
  switch (n.inode.kind) {
    case "file":
      return n.inode.size;
    case "dir":
      return n.dirPlan!.size;
    case "symlink":
      return n.inode.target?.length ?? 0;
    default:
      return 0;
  }
}
