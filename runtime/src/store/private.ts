// The store holds the bytes of every file of every deployment, /etc/shadow's included. Modes inside
// a deployment are enforced by the mounted image's metadata, not by the objects' own modes, so the
// store itself must let nobody but root read anything (the class of rpm-ostree's CVE-2024-2905).
// composefs's advice (composefs#372): objects 0400, never executable or setuid, under 0700
// directories. overlayfs opens the data-only lower layer with the mounter's credentials, so a
// booted system's users still read their files through the mount, with the image's modes.
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../system/atomic.ts";
import type { StoreLayout } from "./layout.ts";

/** Mode of every file in the store that holds file contents (objects, images). */
export const CONTENT_MODE = 0o400;
/** Mode of every directory under which file contents or their metadata live. */
export const PRIVATE_DIR_MODE = 0o700;
/**
 * Written once every file of an older store has been made private: stores written before this
 * existed had 0644 objects under 0755 directories. Its absence is what triggers the repair.
 */
export const PRIVATE_STAMP = ".private-v1";

/** Directories that hold contents: objects/, images/, the OCI blob and layer caches, tmp/. */
export function privateDirs(l: StoreLayout): string[] {
  return [l.objects, l.images, l.cache, l.tmp];
}

/**
 * Makes the store private; cheap when it already is. Called with the store lock held by every
 * command that writes, so an existing store is repaired on its next write.
 */
export function secureStore(l: StoreLayout, log: (m: string) => void = () => {}): void {
  mkdirSync(l.root, { recursive: true });
  // The directories first: that alone closes the leak, whatever happens next.
  for (const d of privateDirs(l)) {
    mkdirSync(d, { recursive: true, mode: PRIVATE_DIR_MODE });
    chmodSync(d, PRIVATE_DIR_MODE);
  }
  const stamp = join(l.root, PRIVATE_STAMP);
  if (existsSync(stamp)) return;
  const fixed = restrictContents(l.objects) + restrictContents(l.images);
  if (fixed > 0) log(`made ${fixed} store files private (mode 0400): they were readable by every user`);
  writeFileAtomic(stamp, "objects and images are mode 0400 under 0700 directories\n");
}

/** chmod 0400 every regular file below `dir` that is not already; returns how many changed. */
function restrictContents(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  const visit = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        visit(p);
        continue;
      }
      if (!e.isFile()) continue;
      if ((lstatSync(p).mode & 0o7777) === CONTENT_MODE) continue;
      chmodSync(p, CONTENT_MODE);
      n++;
    }
  };
  visit(dir);
  return n;
}
