// What a chroot into a deployment tree needs from the host (dracut for an initramfs, apt for a
// layer): /proc, the host's /sys and /dev slaved so nothing propagates back, and tmpfs over paths
// whose contents must not reach the tree. Mounts are undone in reverse, detached, whatever happened.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { MNT_DETACH, MS_BIND, MS_REC, MS_SLAVE, mount, umount } from "./libc.ts";

export class MountStack {
  private readonly points: string[] = [];

  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
    mount(source, target, fstype, flags, data);
    this.points.push(target);
  }

  /** A recursive bind is made a slave: mounts under it on the host still show, ours never leak out. */
  bind(source: string, target: string, recursive: boolean): void {
    this.mount(source, target, null, MS_BIND | (recursive ? MS_REC : 0), null);
    if (recursive) mount(null, target, null, MS_SLAVE | MS_REC, null);
  }

  release(log: (m: string) => void): void {
    for (const m of this.points.splice(0).reverse()) {
      try { umount(m, MNT_DETACH); } catch (e) { log(`warning: could not unmount ${m}: ${(e as Error).message}`); }
    }
  }
}

/** /proc, /sys, /dev, and a tmpfs (with its mount options) on each of `tmpfs` the tree has. */
export function mountChrootBase(s: MountStack, root: string, tmpfs: Record<string, string>): void {
  s.mount("proc", join(root, "proc"), "proc", 0, null);
  s.bind("/sys", join(root, "sys"), true);
  s.bind("/dev", join(root, "dev"), true);
  for (const [p, opts] of Object.entries(tmpfs)) {
    if (existsSync(join(root, p))) s.mount("tmpfs", join(root, p), "tmpfs", 0, opts);
  }
}
