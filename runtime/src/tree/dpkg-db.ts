// The dpkg database belongs to the image, not to the machine. A booted deployment gets the one
// persistent /var shared by every deployment, which hides the image's /var/lib/dpkg: `dpkg -l` would
// show nothing (or another deployment's set). So at stage time the database moves into /usr, the
// read-only part each deployment owns (rpm-ostree keeps rpm's in /usr/lib/sysimage/rpm for the same
// reason), and the tree's /var/lib/dpkg becomes a relative symlink to it. apt and dpkg in a layer
// chroot work through the symlink; particle-boot binds the directory over the persistent
// /var/lib/dpkg (mounts/plan.ts), so each boot, and each rollback, lists its own packages.
import { sortEntries, type Entry, type Inode } from "./model.ts";

/** Where the database lives in a staged tree (relative to the root). */
export const DPKG_DB = "usr/lib/sysimage/dpkg";
/** Where dpkg and apt look for it. */
export const VAR_DPKG = "var/lib/dpkg";
/** The symlink left at /var/lib/dpkg: relative, so it resolves inside whatever root it is in. */
export const VAR_DPKG_LINK = "../../usr/lib/sysimage/dpkg";

export type DpkgMove = "moved" | "already" | "none";

const name = (s: string) => Buffer.from(s);

function child(dir: Inode, n: string): Entry | undefined {
  return dir.entries?.find((e) => e.name.equals(name(n)));
}

function lookup(root: Inode, path: string): Inode | undefined {
  let at: Inode | undefined = root;
  for (const part of path.split("/")) {
    if (at?.kind !== "dir") return undefined;
    at = child(at, part)?.inode;
  }
  return at;
}

/** The directory at `path`, created (like its parent, root-owned, 0755) where missing. */
function ensureDir(root: Inode, path: string): Inode {
  let at = root;
  for (const part of path.split("/")) {
    const e = child(at, part);
    if (e) {
      if (e.inode.kind !== "dir") throw new Error(`/${path}: ${part} is a ${e.inode.kind}, not a directory`);
      at = e.inode;
      continue;
    }
    const dir: Inode = { kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec: at.mtimeSec, mtimeNsec: at.mtimeNsec, xattrs: [], size: 0, entries: [] };
    const entries = (at.entries ??= []);
    entries.push({ name: name(part), inode: dir });
    sortEntries(entries);
    at = dir;
  }
  return at;
}

/**
 * Pure (on the in-memory tree): moves /var/lib/dpkg to /usr/lib/sysimage/dpkg and leaves the
 * symlink. Idempotent: a tree already moved (a layered deployment's, made from a staged one) or
 * without dpkg is left as it is, so the same tree always gives the same image.
 */
export function moveDpkgDatabase(root: Inode): DpkgMove {
  const varLib = lookup(root, "var/lib");
  const entry = varLib?.kind === "dir" ? child(varLib, "dpkg") : undefined;
  if (!entry || entry.inode.kind !== "dir") return lookup(root, DPKG_DB)?.kind === "dir" ? "already" : "none";
  if (lookup(root, DPKG_DB)) {
    throw new Error(`the tree has a dpkg database both in /${VAR_DPKG} and in /${DPKG_DB}; keep one (particle moves /${VAR_DPKG} there itself)`);
  }
  const db = entry.inode;
  const sysimage = ensureDir(root, "usr/lib/sysimage");
  sysimage.entries!.push({ name: name("dpkg"), inode: db });
  sortEntries(sysimage.entries!);
  entry.inode = {
    kind: "symlink", perm: 0o777, uid: 0, gid: 0, mtimeSec: db.mtimeSec, mtimeNsec: db.mtimeNsec, xattrs: [], size: 0,
    target: Buffer.from(VAR_DPKG_LINK),
  };
  return "moved";
}
