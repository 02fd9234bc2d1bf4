// Carrying out a cleanup plan, in the order that keeps every intermediate state bootable: entries
// first (nothing can boot a deployment that is about to go), then deployment directories (renamed
// into tmp/ first, so a half-deleted one never looks like a deployment), then images, objects and
// the ESP files no remaining entry names.
import { existsSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { imagePath, objectPath, storeLayout } from "../store/layout.ts";
import { fsyncDir } from "../system/atomic.ts";
import { removeBootDir, removeStaleTemps } from "../bootloader/esp.ts";
import { removeEntryFile } from "../bootloader/entries.ts";
import { syncGrub } from "../bootloader/grub.ts";
import type { CleanupPlan } from "./cleanup.ts";
import type { RootFormat } from "../manifest.ts";
import { checkpoint } from "../system/die-at.ts";

export function listObjects(sysroot: string): string[] {
  const dir = storeLayout(sysroot).objects;
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const fan of readdirSync(dir)) {
    if (!/^[0-9a-f]{2}$/.test(fan)) continue;
    for (const rest of readdirSync(join(dir, fan))) if (/^[0-9a-f]{62}$/.test(rest)) out.push(fan + rest);
  }
  return out;
}

/** Image digests present, with their format (from the file suffix). */
export function listImages(sysroot: string): Map<string, RootFormat> {
  const dir = storeLayout(sysroot).images;
  const out = new Map<string, RootFormat>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) {
    const m = /^([0-9a-f]{64})\.(erofs|squashfs)$/.exec(f);
    if (m) out.set(m[1]!, m[2] === "squashfs" ? "squashfs" : "erofs");
  }
  return out;
}

export function runCleanup(sysroot: string, esp: string | undefined, plan: CleanupPlan, images: Map<string, RootFormat>): void {
  const l = storeLayout(sysroot);
  if (esp) for (const f of plan.removeEntries) removeEntryFile(esp, f);
  // GRUB's menu must stop naming the removed deployments before their kernels go (below).
  checkpoint("cleanup:entries-removed");
  if (esp) syncGrub(esp);
  for (const id of plan.removeDeployments) {
    const gone = join(l.tmp, `gc-${id}-${process.pid}`);
    checkpoint("cleanup:before-deployment-removed");
    renameSync(join(l.deploy, id), gone);
    fsyncDir(l.deploy);
    checkpoint("cleanup:deployment-moved");
    rmSync(gone, { recursive: true, force: true });
    checkpoint("cleanup:deployment-removed");
  }
  for (const d of plan.removeImages) rmSync(imagePath(l, d, images.get(d) ?? "erofs"), { force: true });
  checkpoint("cleanup:images-removed");
  for (const d of plan.removeObjects) rmSync(objectPath(l, d), { force: true });
  checkpoint("cleanup:objects-removed");
  if (esp) {
    for (const d of plan.removeBootDirs) removeBootDir(esp, d);
    removeStaleTemps(esp);
  }
}
