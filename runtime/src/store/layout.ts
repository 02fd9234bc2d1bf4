// Paths inside a sysroot. Everything takes the sysroot directory so tests hand in a temp tree.
import { join } from "node:path";

export const STORE_DIR = "particle";

export interface StoreLayout {
  root: string;
  objects: string;
  images: string;
  deploy: string;
  var: string;
  tmp: string;
  lock: string;
  cache: string;
}

export function storeLayout(sysroot: string): StoreLayout {
  const root = join(sysroot, STORE_DIR);
  return {
    root,
    objects: join(root, "objects"),
    images: join(root, "images"),
    deploy: join(root, "deploy"),
    var: join(root, "var"),
    tmp: join(root, "tmp"),
    lock: join(root, "lock"),
    cache: join(root, "cache"),
  };
}

/** objects/ab/cdef…: the first two hex digits of the fs-verity digest name the fan-out directory. */
export function objectRelPath(digest: string): string {
  return `${digest.slice(0, 2)}/${digest.slice(2)}`;
}

export function objectPath(l: StoreLayout, digest: string): string {
  return join(l.objects, objectRelPath(digest));
}

export function imagePath(l: StoreLayout, digest: string, format: "composefs" | "erofs" | "squashfs"): string {
  return join(l.images, `${digest}.${format === "squashfs" ? "squashfs" : "erofs"}`);
}

export function deployDir(l: StoreLayout, id: string): string {
  return join(l.deploy, id);
}
