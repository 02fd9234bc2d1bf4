// A tree (or the part of it a filter keeps) as an uncompressed tar stream, in the sorted order of
// the tree model: the same tree gives the same bytes. File bodies are read from disk as they stream.
import { closeSync, openSync, readSync } from "node:fs";
import type { Inode } from "../tree/model.ts";
import { walk } from "../tree/model.ts";
import { bodyPadding, END_OF_ARCHIVE, entryHeader } from "./tar-entry.ts";

const READ_CHUNK = 1 << 20;

export interface LayerSelection {
  /** Whether the entry at `path` (relative, no leading "/") belongs in this layer. Parent directories of kept entries are always kept. */
  keep?: (path: string, inode: Inode) => boolean;
}

function* fileBody(inode: Inode, path: string): Generator<Buffer> {
  const data = inode.data;
  if (data?.kind === "bytes") {
    yield Buffer.from(data.bytes);
  } else if (data?.kind === "path") {
    const fd = openSync(data.path, "r");
    try {
      let left = inode.size;
      while (left > 0) {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) throw new Error(`${path}: file shrank while it was archived`);
        left -= n;
        yield buf.subarray(0, n);
      }
    } finally {
      closeSync(fd);
    }
  } else if (inode.size > 0) {
    throw new Error(`${path}: no content to archive (an object-store file)`);
  }
  yield bodyPadding(inode.size);
}

/**
 * Yields the tar bytes of `root`. Sockets are skipped (tar cannot hold them; nothing in an image
 * needs one). Hardlinks after the first path become links to it, within this layer.
 */
export function* layerTar(root: Inode, epoch: number, sel: LayerSelection = {}): Generator<Buffer> {
  const firstPath = new Map<Inode, Buffer>();
  const keptDirs = new Set<string>();
  const entries: [Buffer, Inode][] = [];
  for (const [abs, inode] of walk(root)) {
    if (abs.length === 0 || inode.kind === "sock") continue;
    entries.push([abs.subarray(1), inode]);
  }
  // With a filter, a directory is kept when it or anything under it is (a layer must create the parents).
  if (sel.keep) {
    for (const [p, inode] of entries) {
      const s = p.toString("latin1");
      if (!sel.keep(s, inode)) continue;
      if (inode.kind === "dir") keptDirs.add(s);
      for (let i = s.indexOf("/"); i >= 0; i = s.indexOf("/", i + 1)) keptDirs.add(s.slice(0, i));
    }
  }
  for (const [path, inode] of entries) {
    if (sel.keep) {
      const s = path.toString("latin1");
      if (inode.kind === "dir" ? !keptDirs.has(s) : !sel.keep(s, inode)) continue;
    }
    const first = inode.kind === "dir" ? undefined : firstPath.get(inode);
    if (first) {
      yield entryHeader(path, { kind: "hardlink", target: first, inode }, epoch);
      continue;
    }
    firstPath.set(inode, path);
    yield entryHeader(path, { kind: "inode", inode }, epoch);
    if (inode.kind === "file") yield* fileBody(inode, path.toString());
  }
  yield END_OF_ARCHIVE;
}
