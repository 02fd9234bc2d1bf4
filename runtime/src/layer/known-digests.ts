// Staging a layer without re-reading its lower deployment. The overlay a layer stages shows every
// file of the lower deployment, and staging would read and digest each one again (no devino cache
// for a mount under tmp/), although a file apt did not touch is the lower's file, whose object
// digest the lower's composefs image already records (trusted.overlay.redirect → /ab/cdef…). A
// lower file serves unless the upper hides it: a file, symlink or whiteout at its path or at one of
// its parent directories' paths, or an opaque directory above it. Both steps are pure: the image's
// bytes and the upper's entries in, a lookup out.
import { XATTR_REDIRECT } from "../composefs/encode.ts";
import { MODE_TYPE, S_IFMT } from "../erofs/format.ts";
import { ErofsImage, type RawInode } from "../erofs/reader.ts";
import type { UpperEntry } from "./upper.ts";

/** Relative path (latin1 bytes) → object digest, for every non-empty regular file of a composefs image. */
export function composefsDigests(image: Buffer, name = "composefs image"): Map<string, string> {
  const img = new ErofsImage(image, name);
  const out = new Map<string, string>();
  const walk = (ino: RawInode, rel: string): void => {
    for (const d of img.dirBlocks(ino).flat()) {
      const n = d.name.toString("latin1");
      if (n === "." || n === "..") continue;
      const child = img.inode(d.nid);
      const path = rel ? `${rel}/${n}` : n;
      const type = child.mode & S_IFMT;
      if (type === MODE_TYPE.dir) walk(child, path);
      else if (type === MODE_TYPE.file && child.size > 0) {
        const redirect = img.xattrs(child).find((x) => x.name.equals(XATTR_REDIRECT))?.value.toString("latin1");
        const digest = redirect?.replaceAll("/", "");
        if (digest && /^[0-9a-f]{64}$/.test(digest)) out.set(path, digest);
      }
    }
  };
  walk(img.inode(img.sb.rootNid), "");
  return out;
}

/**
 * The digest staging may take for tree path `rel` without reading it: the lower's, when nothing in
 * the upper stands at that path or hides it.
 */
export function knownDigests(lower: ReadonlyMap<string, string>, upper: readonly UpperEntry[]): (rel: string) => string | undefined {
  // Paths whose lower contents the overlay does not show: at the path itself and below it.
  const hidden = new Set<string>();
  for (const e of upper) if (e.kind !== "dir" || e.opaque) hidden.add(e.path);
  return (rel) => {
    const digest = lower.get(rel);
    if (!digest) return undefined;
    for (let i = rel.length; i > 0; i = rel.lastIndexOf("/", i - 1)) {
      if (hidden.has(rel.slice(0, i))) return undefined;
    }
    return digest;
  };
}
