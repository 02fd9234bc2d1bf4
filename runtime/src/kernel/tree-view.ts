// Read access to an OS tree, whether it sits in a directory (dir: and tar: sources) or exists only
// as the in-memory model of an image whose file contents are objects (OCI sources). The kernel
// probe reads a few small files through it.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Inode } from "../tree/model.ts";

export interface TreeView {
  /** Names in directory `rel` (relative to the tree's root), or undefined when it is not a directory. */
  list(rel: string): string[] | undefined;
  /** Contents of regular file `rel`, or undefined when there is none. */
  read(rel: string): Buffer | undefined;
}

export function dirView(root: string): TreeView {
  return {
    list(rel) {
      try {
        return statSync(join(root, rel)).isDirectory() ? readdirSync(join(root, rel)) : undefined;
      } catch {
        return undefined;
      }
    },
    read(rel) {
      try {
        return readFileSync(join(root, rel));
      } catch {
        return undefined;
      }
    },
  };
}

/** `objectFile(digest)`: where an object's bytes are (the store, or staged under tmp/). */
export function inodeView(root: Inode, objectFile: (digest: string) => string): TreeView {
  const find = (rel: string): Inode | undefined => {
    let node: Inode | undefined = root;
    for (const part of rel.split("/").filter(Boolean)) {
      node = node?.entries?.find((e) => e.name.toString() === part)?.inode;
      if (!node) return undefined;
    }
    return node;
  };
  return {
    list(rel) {
      const n = find(rel);
      return n?.kind === "dir" ? (n.entries ?? []).map((e) => e.name.toString()) : undefined;
    },
    read(rel) {
      const n = find(rel);
      if (n?.kind !== "file") return undefined;
      const d = n.data;
      if (!d || n.size === 0) return Buffer.alloc(0);
      if (d.kind === "bytes") return Buffer.from(d.bytes);
      return readFileSync(d.kind === "path" ? d.path : objectFile(d.digest));
    },
  };
}
