// Pure: what `particle cleanup` removes from the image caches. The OCI layout cache (cache/oci) keeps
// the manifest, config and layer blobs of the images that kept deployments were staged from, so
// the next upgrade downloads only the layers that changed; everything else goes, with its
// unpacked-layer entry (cache/oci-layers) and the tags in index.json that point at it.
import type { ImageIndex, ImageManifest } from "./schema.ts";

export interface CachePruneInput {
  index: ImageIndex;
  /** Image manifests of the cache, by digest (those that could be read). */
  manifests: ReadonlyMap<string, ImageManifest>;
  /** Manifest digests that kept deployments were staged from. */
  keepManifests: ReadonlySet<string>;
  /** Files under blobs/sha256 (names, not digests: partial downloads have other names). */
  blobFiles: readonly string[];
  /** Files under the unpacked-layer cache. */
  layerEntries: readonly string[];
}

export interface CachePrunePlan {
  index: ImageIndex;
  /** Tags (ref names) dropped from index.json. */
  droppedTags: string[];
  removeBlobFiles: string[];
  removeLayerEntries: string[];
}

const hex = (digest: string) => digest.replace(/^sha256:/, "");

export function planCachePrune(input: CachePruneInput): CachePrunePlan {
  const keepBlobs = new Set<string>();
  const keepLayers = new Set<string>();
  for (const d of input.keepManifests) {
    const m = input.manifests.get(d);
    if (!m) continue;
    keepBlobs.add(hex(d));
    keepBlobs.add(hex(m.config.digest));
    for (const l of m.layers) {
      keepBlobs.add(hex(l.digest));
      keepLayers.add(`${hex(l.digest)}.json`);
    }
  }
  const kept = input.index.manifests.filter((x) => input.keepManifests.has(x.digest) && input.manifests.has(x.digest));
  const droppedTags = input.index.manifests
    .filter((x) => !kept.includes(x))
    .map((x) => x.annotations?.["org.opencontainers.image.ref.name"] ?? x.digest);
  return {
    index: { ...input.index, manifests: kept },
    droppedTags,
    removeBlobFiles: input.blobFiles.filter((f) => !keepBlobs.has(f)),
    removeLayerEntries: input.layerEntries.filter((f) => !keepLayers.has(f)),
  };
}
