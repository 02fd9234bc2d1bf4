// What a layer's overlay upper directory says about the tree apt produced, read once after apt
// and used twice: which initramfs inputs changed (initramfs-plan.ts) and which files of the lower
// deployment staging may take as they are (known-digests.ts). overlayfs marks a removal with a 0:0
// character device and a directory that hides everything below it with trusted.overlay.opaque=y.
import { lstatSync, readdirSync } from "node:fs";
import { getXattr } from "../system/libc.ts";

export type UpperKind = "file" | "symlink" | "dir" | "whiteout" | "other";

export interface UpperEntry {
  /** Relative to the tree's root, no leading slash; the name's bytes as latin1 (names need not be UTF-8). */
  path: string;
  kind: UpperKind;
  /** Directories only: hides the lower directory's contents. */
  opaque?: boolean;
  /** Whether the lower deployment has something at this path. */
  inLower: boolean;
}

const OPAQUE = Buffer.from("trusted.overlay.opaque");
const SLASH = Buffer.from("/");

function isOpaque(p: Buffer): boolean {
  try { return getXattr(p, OPAQUE).toString() === "y"; } catch { return false; }
}

function existsAt(p: Buffer): boolean {
  try { lstatSync(p); return true; } catch { return false; }
}

/** Every entry of `upper` (the root itself excluded), with whether `lower` has the same path. */
export function readUpper(upper: string, lower: string): UpperEntry[] {
  const out: UpperEntry[] = [];
  const up = Buffer.from(upper);
  const low = Buffer.from(lower);
  const walk = (rel: Buffer): void => {
    const here = rel.length ? Buffer.concat([up, SLASH, rel]) : up;
    for (const name of readdirSync(here, { encoding: "buffer" }).sort(Buffer.compare)) {
      const r = rel.length ? Buffer.concat([rel, SLASH, name]) : name;
      const p = Buffer.concat([up, SLASH, r]);
      const st = lstatSync(p);
      const kind: UpperKind = st.isDirectory() ? "dir" : st.isFile() ? "file" : st.isSymbolicLink() ? "symlink"
        : st.isCharacterDevice() && st.rdev === 0 ? "whiteout" : "other";
      const e: UpperEntry = { path: r.toString("latin1"), kind, inLower: existsAt(Buffer.concat([low, SLASH, r])) };
      if (kind === "dir" && isOpaque(p)) e.opaque = true;
      out.push(e);
      if (kind === "dir") walk(r);
    }
  };
  walk(Buffer.alloc(0));
  return out;
}
