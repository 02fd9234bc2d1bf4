// OCI layer semantics over the in-memory tree. Each layer is first read into its own small tree
// (whiteouts and opaque markers kept as such), then merged onto the tree of the layers below:
// the same two-step rule overlayfs applies, which keeps the odd cases (a whiteout followed by a
// directory of the same name, an opaque directory re-declaring a child) well defined.
//
// Names are map keys in latin1, which maps bytes 1:1, so non-UTF-8 names survive.
import type { Inode, Xattr } from "../tree/model.ts";
import { sortEntries } from "../tree/model.ts";
import type { TarEntry } from "../tar/reader.ts";

export interface Dir {
  inode: Inode;
  children: Map<string, Node>;
  /** Layer trees only: `.wh..wh..opq` was seen, everything below from lower layers is hidden. */
  opaque: boolean;
  /** Whether an entry declared this directory (else it was implied by a deeper path and keeps the lower one's attributes). */
  explicit: boolean;
}

/** `lower`: a hardlink into a lower layer, by the path it was resolved from (kept so a cached layer tree can be resolved again). */
export type Node = { t: "dir"; dir: Dir } | { t: "leaf"; inode: Inode; lower?: string } | { t: "whiteout" };

const WH = ".wh.";
const OPAQUE = ".wh..wh..opq";
/** aufs bookkeeping names (".wh..wh.plnk" etc.): never part of the image. */
const WH_META = ".wh..wh.";

export function emptyDir(explicit = false, inode?: Inode): Dir {
  return {
    inode: inode ?? { kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0, xattrs: [], size: 0 },
    children: new Map(),
    opaque: false,
    explicit,
  };
}

const split = (p: Buffer): string[] => (p.length ? p.toString("latin1").split("/") : []);

export function lookup(root: Dir, parts: string[]): Node | undefined {
  let dir = root;
  for (let i = 0; i < parts.length; i++) {
    const n = dir.children.get(parts[i]!);
    if (!n) return undefined;
    if (i === parts.length - 1) return n;
    if (n.t !== "dir") return undefined;
    dir = n.dir;
  }
  return { t: "dir", dir: root };
}

function inodeOf(e: TarEntry): Inode {
  const base = { perm: e.perm, uid: e.uid, gid: e.gid, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, xattrs: e.xattrs as Xattr[], size: 0 };
  switch (e.type) {
    case "file": return { kind: "file", ...base, size: e.size };
    case "symlink": return { kind: "symlink", ...base, target: e.linkname };
    case "chr": case "blk": return { kind: e.type, ...base, rdevMajor: e.devmajor, rdevMinor: e.devminor };
    case "fifo": return { kind: "fifo", ...base };
    case "dir": return { kind: "dir", ...base };
    case "link": throw new Error("hardlinks have no inode of their own");
  }
}

/** Reads one layer's entries into a layer tree. `lower` is the merged tree below, for hardlinks that point into it. */
export class LayerBuilder {
  readonly root = emptyDir();

  constructor(private readonly lower: Dir, private readonly what: string) {}

  /** Adds an entry; returns the new inode for regular files, whose data the caller fills in. */
  add(e: TarEntry): Inode | undefined {
    const parts = split(e.path);
    const name = parts.pop();
    const where = `${this.what}: ${JSON.stringify(e.path.toString())}`;
    if (name === undefined) {
      // The root itself ("./"): only its attributes count.
      if (e.type !== "dir") throw new Error(`${where}: the root must be a directory`);
      Object.assign(this.root.inode, inodeOf(e));
      this.root.explicit = true;
      return undefined;
    }
    const isWhiteout = name.startsWith(WH);
    // A whiteout below something this layer made a file, a symlink or a whiteout hides nothing more:
    // that entry already hid everything under it (umoci writes both when a directory becomes a file).
    if (isWhiteout && this.blocked(parts)) return undefined;
    const parent = this.dirAt(parts, where);
    if (name === OPAQUE) {
      parent.opaque = true;
      return undefined;
    }
    if (name.startsWith(WH_META)) return undefined;
    if (isWhiteout) {
      const target = name.slice(WH.length);
      if (target === "" || target === "." || target === "..") throw new Error(`${where}: bad whiteout name`);
      parent.children.set(target, { t: "whiteout" });
      return undefined;
    }
    const prev = parent.children.get(name);
    if (e.type === "dir") {
      if (prev?.t === "dir") {
        // Declared again (or after an implied parent): the attributes change, the children stay.
        Object.assign(prev.dir.inode, inodeOf(e));
        prev.dir.explicit = true;
      } else {
        const d = emptyDir(true, inodeOf(e));
        // A whiteout then a directory of the same name in one layer: a new, empty directory.
        if (prev?.t === "whiteout") d.opaque = true;
        parent.children.set(name, { t: "dir", dir: d });
      }
      return undefined;
    }
    if (e.type === "link") {
      const target = split(e.linkname);
      const here = lookup(this.root, target);
      const t = here ?? lookup(this.lower, target);
      if (!t || t.t === "whiteout") throw new Error(`${where}: hardlink to ${JSON.stringify(e.linkname.toString())}, which is not in this layer or below`);
      if (t.t === "dir") throw new Error(`${where}: hardlink to a directory`);
      parent.children.set(name, here ? { t: "leaf", inode: t.inode } : { t: "leaf", inode: t.inode, lower: target.join("/") });
      return undefined;
    }
    const inode = inodeOf(e);
    parent.children.set(name, { t: "leaf", inode });
    return e.type === "file" ? inode : undefined;
  }

  /** Whether a leaf or a whiteout of this layer sits on the path. */
  private blocked(parts: string[]): boolean {
    let dir = this.root;
    for (const p of parts) {
      const n = dir.children.get(p);
      if (n?.t === "leaf" || n?.t === "whiteout") return true;
      if (n?.t !== "dir") return false;
      dir = n.dir;
    }
    return false;
  }

  private dirAt(parts: string[], where: string): Dir {
    let dir = this.root;
    for (const p of parts) {
      const n = dir.children.get(p);
      if (n?.t === "dir") { dir = n.dir; continue; }
      if (n?.t === "leaf") throw new Error(`${where}: parent ${JSON.stringify(p)} is not a directory in this layer`);
      const d = emptyDir();
      // Beneath a whiteout of the same name the lower directory is gone: start empty.
      if (n?.t === "whiteout") d.opaque = true;
      dir.children.set(p, { t: "dir", dir: d });
      dir = d;
    }
    return dir;
  }
}

/**
 * Applies a layer tree onto the merged tree below it (in place). A directory the layer only implies
 * (it names paths below it) where the layers below have a symlink is looked up through the
 * symlink, inside the root, as umoci and containerd do: `lib/x` over `lib -> usr/lib` lands in
 * usr/lib. Whiteouts of paths the layers below lack change nothing and create no directories.
 */
export function mergeLayer(root: Dir, upper: Dir): void {
  mergeInto(root, root, [], upper);
}

function mergeInto(root: Dir, lower: Dir, at: string[], upper: Dir): void {
  if (upper.explicit) {
    const { perm, uid, gid, mtimeSec, mtimeNsec, xattrs } = upper.inode;
    Object.assign(lower.inode, { perm, uid, gid, mtimeSec, mtimeNsec, xattrs });
    lower.explicit = true;
  }
  if (upper.opaque) lower.children.clear();
  for (const [name, n] of upper.children) {
    if (n.t === "whiteout") { lower.children.delete(name); continue; }
    if (n.t === "leaf") { lower.children.set(name, n); continue; }
    const have = lower.children.get(name);
    if (have?.t === "dir") { mergeInto(root, have.dir, [...at, name], n.dir); continue; }
    if (!n.dir.explicit && have?.t === "leaf" && have.inode.kind === "symlink") {
      const to = resolveDir(root, at, have.inode.target!);
      if (to) { mergeInto(root, to.dir, to.path, n.dir); continue; }
      if (!placesAnything(n.dir)) continue;
      throw new Error(`${JSON.stringify([...at, name].join("/"))} is a symlink to ${JSON.stringify(have.inode.target!.toString())}, which is not a directory in the layers below, and the layer has entries under it`);
    }
    if (!n.dir.explicit && !placesAnything(n.dir)) continue;
    // Fresh directory: merging into an empty one drops the layer's own markers.
    const d = emptyDir(n.dir.explicit, { ...n.dir.inode });
    mergeInto(root, d, [...at, name], n.dir);
    lower.children.set(name, { t: "dir", dir: d });
  }
}

/** Whether merging a layer directory adds anything (an entry or a declared directory), not just whiteouts. */
function placesAnything(d: Dir): boolean {
  if (d.explicit) return true;
  for (const n of d.children.values()) if (n.t === "leaf" || (n.t === "dir" && placesAnything(n.dir))) return true;
  return false;
}

/** Linux's limit on symlinks followed in one lookup (MAXSYMLINKS). */
const MAX_LINKS = 40;

/**
 * The directory a symlink at `base`/… leads to, resolved inside `root` as if it were "/" (".."
 * stops at the root, absolute targets start from it). Undefined if it dangles, loops or ends at a
 * non-directory.
 */
export function resolveDir(root: Dir, base: string[], target: Buffer): { dir: Dir; path: string[] } | undefined {
  let links = 0;
  let path = [...base];
  let dir: Dir = root;
  const todo: string[] = [];
  // Continues the lookup with a symlink's target in place of the symlink.
  const follow = (t: Buffer): boolean => {
    if (t[0] === 0x2f) path = [];
    const d = lookup(root, path);
    if (d?.t !== "dir") return false;
    dir = d.dir;
    todo.unshift(...t.toString("latin1").split("/"));
    return true;
  };
  if (!follow(target)) return undefined;
  while (todo.length) {
    const p = todo.shift()!;
    if (p === "" || p === ".") continue;
    if (p === "..") {
      path.pop();
      dir = (lookup(root, path) as { t: "dir"; dir: Dir }).dir;
      continue;
    }
    const n = dir.children.get(p);
    if (n?.t === "dir") { path.push(p); dir = n.dir; continue; }
    if (n?.t !== "leaf" || n.inode.kind !== "symlink" || ++links > MAX_LINKS || !follow(n.inode.target!)) return undefined;
  }
  return { dir, path };
}

/** The merged tree as the model the image writers take (entries sorted by name bytes). */
export function toInodeTree(d: Dir): Inode {
  const entries = [...d.children].map(([name, n]) => ({
    name: Buffer.from(name, "latin1"),
    inode: n.t === "dir" ? toInodeTree(n.dir) : (n as { inode: Inode }).inode,
  }));
  d.inode.entries = sortEntries(entries);
  return d.inode;
}

/** The regular file at `path` (symlinks not followed), if any. */
export function fileAt(root: Dir, path: string): Inode | undefined {
  const n = lookup(root, path.split("/").filter(Boolean));
  return n?.t === "leaf" && n.inode.kind === "file" ? n.inode : undefined;
}

export function dirAt(root: Dir, path: string): Dir | undefined {
  const n = lookup(root, path.split("/").filter(Boolean));
  return n?.t === "dir" ? n.dir : undefined;
}
