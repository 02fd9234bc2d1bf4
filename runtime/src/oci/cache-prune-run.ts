// Reading the image caches for planCachePrune and carrying out its plan. index.json is rewritten
// atomically before any blob goes, so a kill in between leaves tags that name only present blobs.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { nodeCrypto } from "../system/node-crypto.ts";
import { ImageIndex, ImageManifest, parseJson } from "./schema.ts";
import { planCachePrune, type CachePrunePlan } from "./cache-prune.ts";
import { layerCacheDir, ociCacheDir } from "./cache-dirs.ts";
import type { StoreLayout } from "../store/layout.ts";
import { writeFileAtomic } from "../system/atomic.ts";
import { checkpoint } from "../system/die-at.ts";

const list = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);

/** The plan, or undefined when there is no OCI cache at all. */
export function readCachePrune(l: StoreLayout, keepManifests: ReadonlySet<string>): CachePrunePlan | undefined {
  const layout = ociCacheDir(l);
  const indexPath = join(layout, "index.json");
  const layerEntries = list(layerCacheDir(l));
  if (!existsSync(indexPath)) {
    if (!layerEntries.length) return undefined;
    return { index: { schemaVersion: 2, manifests: [] }, droppedTags: [], removeBlobFiles: list(join(layout, "blobs", "sha256")), removeLayerEntries: layerEntries };
  }
  const index = parseJson(ImageIndex, readFileSync(indexPath, "utf8"), indexPath);
  const manifests = new Map<string, ImageManifest>();
  for (const d of index.manifests) {
    const p = join(layout, "blobs", "sha256", d.digest.slice(7));
    try {
      const buf = readFileSync(p);
      // A damaged manifest is not kept: its tag goes, and the next staging fetches it again.
      if (`sha256:${nodeCrypto().createHash("sha256").update(buf).digest("hex")}` !== d.digest) continue;
      manifests.set(d.digest, parseJson(ImageManifest, buf.toString("utf8"), p));
    } catch { /* missing or not a manifest: not kept */ }
  }
  return planCachePrune({ index, manifests, keepManifests, blobFiles: list(join(layout, "blobs", "sha256")), layerEntries });
}

export function runCachePrune(l: StoreLayout, plan: CachePrunePlan): void {
  const layout = ociCacheDir(l);
  if (plan.droppedTags.length && existsSync(join(layout, "index.json"))) writeFileAtomic(join(layout, "index.json"), JSON.stringify(plan.index), 0o644);
  checkpoint("cleanup:oci-index-written");
  for (const f of plan.removeBlobFiles) rmSync(join(layout, "blobs", "sha256", f), { force: true, recursive: true });
  for (const f of plan.removeLayerEntries) rmSync(join(layerCacheDir(l), f), { force: true, recursive: true });
}
