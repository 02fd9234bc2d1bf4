// Mounting a deployment read-only for a while (building its initramfs, reading its /etc). The one
// place that calls the mounts module for that, and the one that guarantees the unmount.
import { mkdtempSync, rmdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { readDeployment } from "../store/deployments.ts";
import { storeLayout } from "../store/layout.ts";
import { mountDeployment, unmountTree } from "../mounts/index.ts";
import { checkpoint } from "../system/die-at.ts";

/** Mounts deployment `id` read-only at `target` (an empty directory) for the duration of `fn`. */
export async function withDeploymentMounted<T>(sysroot: string, id: string, target: string, fn: (root: string) => Promise<T>, log: (m: string) => void = () => {}): Promise<T> {
  const manifest = readDeployment(storeLayout(sysroot), id);
  // The helper mounts go beside the target (under the store's tmp/ for every writer), where the
  // next command finds and detaches what a killed one left; not under the system's /tmp.
  const helperDir = mkdtempSync(join(dirname(target), ".mount-helper-"));
  let r;
  try {
    r = mountDeployment({ sysroot, manifest, target, verity: undefined, helperDir });
  } finally {
    rmdirSync(helperDir);
  }
  for (const w of r.warnings) log(`warning: ${w}`);
  try {
    checkpoint("deployment:mounted");
    return await fn(target);
  } finally {
    unmountTree(target, { lazy: true });
  }
}
