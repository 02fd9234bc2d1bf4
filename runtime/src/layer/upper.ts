// What a layer's overlay upper directory says about the tree apt produced, read once after apt
// and used twice: which initramfs inputs changed (initramfs-plan.ts) and which files of the lower
// deployment staging may take as they are (known-digests.ts). overlayfs marks a removal with a 0:0
// character device and a directory that hides everything below it with trusted.overlay.opaque=y.
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { getXattr } from "../system/libc.ts";

export type UpperKind = "file" | "symlink" | "dir" | "whiteout" | "other";

export interface UpperEntry {
  /** Relative to the tree's root, no leading slash. */
  path: string;
  kind: UpperKind;
  /** Directories only: hides the lower directory's contents. */
  opaque?: boolean;
  /** Whether the lower deployment has something at this path. */
  inLower: boolean;
}

const OPAQUE = Buffer.from("trusted.overlay.opaque");

function isOpaque(p: string): boolean {
  try { return getXattr(Buffer.from(p), OPAQUE).toString() === "y"; } catch { return false; }
}

function existsIn(lower: string, rel: string): boolean {
  try { lstatSync(join(lower, rel)); return true; } catch { return false; }
}

/** Every entry of `upper` (the root itself excluded), with whether `lower` has the same path. */
export function readUpper(upper: string, lower: string): UpperEntry[] {
  const out: UpperEntry[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(upper, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(upper, r);
      const st = lstatSync(p);
      const kind: UpperKind = st.isDirectory() ? "dir" : st.isFile() ? "file" : st.isSymbolicLink() ? "symlink"
        : st.isCharacterDevice() && st.rdev === 0 ? "whiteout" : "other";
      const e: UpperEntry = { path: r, kind, inLower: existsIn(lower, r) };
      if (kind === "dir" && isOpaque(p)) e.opaque = true;
      out.push(e);
      if (kind === "dir") walk(r);
    }
  };
  walk("");
  return out;
}
