import { existsSync } from "node:fs";
import { listBootDirs } from "../bootloader/esp.ts";
import { particleEntries, readEntries } from "../bootloader/entries.ts";
import { planCleanup, keptDeployments } from "../deployments/cleanup.ts";
import { listImages, listObjects, runCleanup } from "../deployments/cleanup-run.ts";
import { readManifests, readStatus } from "../deployments/read.ts";
import { objectsOfDeployment } from "../deployments/refs.ts";
import { requireEsp, resolveWhere } from "../deployments/where.ts";
import { acquireLock } from "../store/lock.ts";
import { storeLayout } from "../store/layout.ts";
import { cleanTmp } from "../store/tmp.ts";
import { secureStore } from "../store/private.ts";
import { readCachePrune, runCachePrune } from "../oci/cache-prune-run.ts";

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const w = resolveWhere(opts);
  const log = (m: string) => process.stderr.write(`particle: ${m}\n`);
  const l = storeLayout(w.sysroot);
  if (!existsSync(l.root)) throw new Error(`${w.sysroot} has no particle store`);
  const lock = acquireLock(l.lock, "cleanup", log);
  try {
    cleanTmp(l);
    secureStore(l, log);
    const host = readStatus(w);
    // Without the entries, staged and rollback are unknown and would look like garbage.
    const esp = requireEsp(w);
    if (keptDeployments(host).length === 0) throw new Error(`no deployment is booted, staged or the default on ${esp}; refusing to remove them all`);
    const manifests = readManifests(w.sysroot);
    const byId = new Map(manifests.map((m) => [m.id, m]));
    const refs = new Map<string, Set<string>>();
    for (const id of keptDeployments(host)) refs.set(id, await objectsOfDeployment(w.sysroot, byId.get(id)!));
    const images = listImages(w.sysroot);
    const plan = planCleanup({
      host,
      deployments: manifests.map((m) => m.id),
      entries: particleEntries(readEntries(esp)),
      imageOf: new Map(manifests.map((m) => [m.id, m.imageDigest])),
      objectsOf: (id) => refs.get(id) ?? [],
      objects: listObjects(w.sysroot),
      images: images.keys(),
      bootDirs: listBootDirs(esp),
    });
    if (!opts.dryRun) runCleanup(w.sysroot, esp, plan, images);
    // After the deployments: a kill before this point leaves a cache that is only larger.
    const keepManifests = new Set(plan.keep.flatMap((id) => { const o = byId.get(id)?.oci; return o ? [o.manifestDigest] : []; }));
    const cachePlan = readCachePrune(l, keepManifests);
    if (cachePlan && !opts.dryRun) runCachePrune(l, cachePlan);
    const summary = {
      dryRun: !!opts.dryRun, kept: plan.keep, removedDeployments: plan.removeDeployments, removedEntries: plan.removeEntries,
      removedImages: plan.removeImages.length, removedObjects: plan.removeObjects.length, removedBootDirs: plan.removeBootDirs.length,
      removedCacheBlobs: cachePlan?.removeBlobFiles.length ?? 0, removedCacheTags: cachePlan?.droppedTags.length ?? 0,
      removedLayerEntries: cachePlan?.removeLayerEntries.length ?? 0,
    };
    if (opts.json) process.stdout.write(JSON.stringify(summary) + "\n");
    else log(`${opts.dryRun ? "would remove" : "removed"} deployments [${plan.removeDeployments.join(", ")}], ${plan.removeEntries.length} entries, ${plan.removeImages.length} images, ${plan.removeObjects.length} objects, ${plan.removeBootDirs.length} kernel/initramfs dirs, ${summary.removedCacheBlobs} cached image blobs (${summary.removedCacheTags} tags), ${summary.removedLayerEntries} unpacked-layer entries; kept [${plan.keep.join(", ")}]`);
  } finally {
    lock.release();
  }
}
