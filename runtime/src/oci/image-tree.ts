// An OCI image → the in-memory tree of its merged layers, with every file's content in the object
// store's staging area. The order: ask the source for its digest, copy the image into the layout
// cache (skopeo, signature policy applied), read index/manifest/config, then stream each layer.
import { nodeCrypto } from "../system/node-crypto.ts";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Inode } from "../tree/model.ts";
import { objectPath, type StoreLayout } from "../store/layout.ts";
import { parseOsRelease } from "../store/os-release.ts";
import { blobPath, readImage } from "./layout.ts";
import { dirAt, emptyDir, fileAt, mergeLayer, toInodeTree, type Dir } from "./layers.ts";
import { ObjectSink } from "./objects-sink.ts";
import { unpackLayer } from "./unpack.ts";
import { LayerCache } from "./layer-cache.ts";
import { layerCacheDir, ociCacheDir } from "./cache-dirs.ts";
import { hasObject } from "../store/objects.ts";
import { copyToLayout, inspectDigest, type Policy } from "./skopeo.ts";
import type { ImageRef } from "./transport.ts";
import { fmtBytes, type Progress } from "./progress.ts";

export interface OciRecordInput {
  reference: string;
  manifestDigest: string;
  sourceDigest: string;
  created?: string;
  labels: Record<string, string>;
  layers: number;
}

export interface OciTree {
  root: Inode;
  sink: ObjectSink;
  files: number;
  bytes: number;
  version?: string;
  kernel?: string;
  record: OciRecordInput;
}


/** One tag per reference: staging the same reference again replaces the tag, the blobs stay. */
export const cacheTag = (ref: string): string => `ref-${nodeCrypto().createHash("sha256").update(ref).digest("hex").slice(0, 32)}`;

export async function buildOciTree(l: StoreLayout, img: ImageRef, work: string, policy: Policy, progress: Progress, log: (m: string) => void): Promise<OciTree> {
  const cache = ociCacheDir(l);
  mkdirSync(cache, { recursive: true });
  const sourceDigest = await inspectDigest(img);
  const tag = cacheTag(img.ref);
  progress.start(`fetching ${img.ref}`);
  await copyToLayout(img, cache, tag, policy, (n) => progress.set(n));
  progress.end();
  const image = readImage(cache, tag);
  const objects = join(work, "objects");
  mkdirSync(objects, { recursive: true });
  const sink = new ObjectSink(l, objects);
  const merged: Dir = emptyDir();
  const total = image.layers.reduce((a, x) => a + x.size, 0);
  progress.start(`unpacking ${image.layers.length} layers`, total);
  const layerCache = new LayerCache(layerCacheDir(l));
  const known = (d: string) => sink.staged.has(d) || hasObject(l, d);
  let reused = 0;
  for (const [i, layer] of image.layers.entries()) {
    const what = `image ${img.ref}: layer ${i + 1}/${image.layers.length}`;
    const cached = layerCache.load(layer.digest, merged, known);
    if (cached) {
      reused++;
      progress.add(layer.size);
      merge(merged, cached, what);
      continue;
    }
    let upper: Dir;
    try {
      upper = await unpackLayer(cache, layer, what, merged, sink, (n) => progress.add(n));
    } catch (e) {
      // skopeo reuses any blob the layout has, so a corrupted one would fail every later stage too.
      if (!/is corrupted/.test((e as Error).message)) throw e;
      rmSync(blobPath(cache, layer.digest), { force: true });
      throw new Error(`${(e as Error).message}; removed it from the cache (${cache}), staging again fetches it anew`);
    }
    layerCache.save(layer.digest, upper);
    merge(merged, upper, what);
  }
  progress.end();
  log(`unpacked ${image.layers.length - reused} of ${image.layers.length} layers (${reused} known from earlier stagings; ${fmtBytes(total)} compressed in all): ${sink.files} files read, ${sink.objectsAdded} new objects`);
  const readObject = (f: Inode) => readFileSync(sink.pathOf((f.data as { digest: string }).digest, (d) => objectPath(l, d)));
  const root = toInodeTree(merged);
  const { files, bytes } = countFiles(root);
  return {
    root, sink, files, bytes,
    version: osVersion(merged, readObject),
    kernel: findKernel(merged),
    record: {
      reference: img.ref,
      manifestDigest: image.manifestDigest,
      sourceDigest,
      created: image.config.created,
      labels: image.config.config?.Labels ?? {},
      layers: image.layers.length,
    },
  };
}

function merge(merged: Dir, upper: Dir, what: string): void {
  try {
    mergeLayer(merged, upper);
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
}

function countFiles(root: Inode): { files: number; bytes: number } {
  const seen = new Set<Inode>();
  const visit = (d: Inode) => {
    for (const e of d.entries ?? []) {
      if (e.inode.kind === "dir") visit(e.inode);
      else if (e.inode.kind === "file") seen.add(e.inode);
    }
  };
  visit(root);
  let bytes = 0;
  for (const i of seen) bytes += i.size;
  return { files: seen.size, bytes };
}

/** VERSION_ID from os-release; /etc/os-release is usually a symlink to ../usr/lib/os-release, hence the second look. */
function osVersion(root: Dir, read: (f: Inode) => Buffer): string | undefined {
  for (const p of ["etc/os-release", "usr/lib/os-release"]) {
    const f = fileAt(root, p);
    // An empty file has no object to read (and no version in it).
    if (f && f.size > 0 && f.size < 1 << 16) return parseOsRelease(read(f).toString("utf8"));
  }
  return undefined;
}

/** The newest kernel with its image beside the modules or as /boot/vmlinuz-<kver> (as stage.ts does for directories). */
function findKernel(root: Dir): string | undefined {
  const mods = dirAt(root, "usr/lib/modules");
  if (!mods) return undefined;
  const kvers = [...mods.children.keys()].filter((k) => fileAt(root, `usr/lib/modules/${k}/vmlinuz`) || fileAt(root, `boot/vmlinuz-${k}`));
  return kvers.sort().at(-1);
}
