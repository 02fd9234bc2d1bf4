// The objects a composefs deployment uses. Staging lists them in deploy/<id>/objects.bin; the image
// is the authority: every regular file in its EROFS metadata image carries
// trusted.overlay.redirect=/ab/cdef… naming its object. Read by mounting the image alone (no
// overlay), where the xattrs appear as stored. Cleanup deletes what no kept deployment names, so a
// failure here aborts cleanup instead of reading as "uses nothing".
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import type { Manifest } from "../manifest.ts";
import { deployDir, imagePath, storeLayout } from "../store/layout.ts";
import { OBJECT_LIST, readObjectList } from "../store/deployments.ts";
import { run } from "../system/exec.ts";
import { getXattr, listXattrs, MNT_DETACH, MS_RDONLY, mount, umount } from "../system/libc.ts";

const REDIRECT = "trusted.overlay.redirect";

/** Pure: "/ab/cdef…" → "abcdef…", or undefined for a redirect that is not an object path. */
export function objectFromRedirect(v: string): string | undefined {
  const m = /^\/?([0-9a-f]{2})\/([0-9a-f]{62})$/.exec(v.replace(/\0+$/, ""));
  return m ? m[1]! + m[2]! : undefined;
}

function walk(dir: string, out: Set<string>): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) walk(p, out);
    else if (st.isFile()) {
      const b = Buffer.from(p);
      if (!listXattrs(b).some((x) => x.toString() === REDIRECT)) continue;
      const d = objectFromRedirect(getXattr(b, Buffer.from(REDIRECT)).toString());
      if (d) out.add(d);
    }
  }
}

/**
 * The objects deployment `m` uses: from the object list staging wrote beside the manifest, or,
 * when a deployment has none, from its image.
 */
export async function objectsOfDeployment(sysroot: string, m: Manifest): Promise<Set<string>> {
  if (m.format !== "composefs") return new Set();
  const l = storeLayout(sysroot);
  if (existsSync(join(deployDir(l, m.id), OBJECT_LIST))) {
    const listed = new Set(readObjectList(l, m.id));
    if (listed.size === 0 && m.files > 0 && m.bytes > 0) return objectsOfImage(sysroot, m);
    return listed;
  }
  return objectsOfImage(sysroot, m);
}

async function objectsOfImage(sysroot: string, m: Manifest): Promise<Set<string>> {
  const out = new Set<string>();
  const img = imagePath(storeLayout(sysroot), m.imageDigest, m.format);
  if (!existsSync(img)) throw new Error(`deployment ${m.id}: image ${img} is missing`);
  const mnt = mkdtempSync(join(storeLayout(sysroot).tmp, "refs-"));
  try {
    try {
      mount(img, mnt, "erofs", MS_RDONLY, null); // file-backed EROFS, kernel ≥ 6.12
    } catch {
      await run("mount", ["-t", "erofs", "-o", "ro,loop", img, mnt]);
    }
    try {
      walk(mnt, out);
    } finally {
      umount(mnt, MNT_DETACH);
    }
  } finally {
    rmdirSync(mnt);
  }
  if (out.size === 0 && m.files > 0) throw new Error(`deployment ${m.id}: its image names no objects although it has ${m.files} files; refusing to collect objects`);
  return out;
}
