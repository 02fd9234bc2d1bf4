// The garbage-collection choice for `particle cleanup`: keep the booted deployment, the staged (or
// default) one and one rollback; everything else goes, with every object, image and ESP file that
// no kept deployment uses. Pure: it takes what is on disk and returns what to delete.
import type { Host } from "./status.ts";
import type { LoadedEntry } from "../bootloader/entries.ts";
import { digestOfEntryPath } from "../bootloader/esp.ts";

export interface CleanupInput {
  host: Host;
  /** Every deployment id in the store. */
  deployments: readonly string[];
  /** Our entries (particle-*), whatever deployment they name. */
  entries: readonly LoadedEntry[];
  /** Image digest of each deployment. */
  imageOf: ReadonlyMap<string, string>;
  /** Object digests each kept deployment references (only kept ones are needed). */
  objectsOf: (id: string) => Iterable<string>;
  /** Every object and image digest present in the store. */
  objects: Iterable<string>;
  images: Iterable<string>;
  /** Digest directories on the ESP. */
  bootDirs: Iterable<string>;
}

export interface CleanupPlan {
  keep: string[];
  removeDeployments: string[];
  /** Entry files to remove: entries of removed deployments and entries naming no deployment. */
  removeEntries: string[];
  removeImages: string[];
  removeObjects: string[];
  removeBootDirs: string[];
}

export function keptDeployments(host: Host): string[] {
  const s = host.status;
  const ids = [s.booted?.id, s.staged?.id, host.spec.defaultDeployment, s.rollback?.id].filter((x): x is string => !!x);
  return [...new Set(ids)];
}

export function planCleanup(input: CleanupInput): CleanupPlan {
  const keep = keptDeployments(input.host);
  const kept = new Set(keep);
  const removeDeployments = input.deployments.filter((id) => !kept.has(id));
  const removeEntries = input.entries.filter((e) => !e.deployId || !kept.has(e.deployId)).map((e) => e.name.file);

  const keptImages = new Set(keep.map((id) => input.imageOf.get(id)).filter((x): x is string => !!x));
  const removeImages = [...input.images].filter((d) => !keptImages.has(d));

  const keptObjects = new Set<string>();
  for (const id of keep) for (const o of input.objectsOf(id)) keptObjects.add(o);
  const removeObjects = [...input.objects].filter((d) => !keptObjects.has(d));

  const usedBoot = new Set<string>();
  for (const e of input.entries) {
    if (!e.deployId || !kept.has(e.deployId)) continue;
    for (const p of [e.linux, ...e.initrd]) {
      const d = p && digestOfEntryPath(p);
      if (d) usedBoot.add(d);
    }
  }
  const removeBootDirs = [...input.bootDirs].filter((d) => !usedBoot.has(d));
  return { keep, removeDeployments, removeEntries, removeImages, removeObjects, removeBootDirs };
}
