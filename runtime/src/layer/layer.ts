// `particle layer install|remove`: a new deployment = a deployment's tree + apt, staged like any
// other. Order: lock the store, clear tmp/, plan (pure), mount the lower deployment with a writable
// overlay under tmp/, run apt in a chroot over it, unmount the chroot mounts, stage the overlay
// (still mounted) as a dir: source, unmount everything. apt fails → nothing was staged, tmp/ is
// removed, the store is as before.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Manifest } from "../manifest.ts";
import { unmountTree } from "../mounts/index.ts";
import { kernelVersions } from "../install/initramfs.ts";
import { listDeployments } from "../store/deployments.ts";
import { imagePath, storeLayout, type StoreLayout } from "../store/layout.ts";
import { acquireLock } from "../store/lock.ts";
import { initStore, stage, type StageResult } from "../store/stage.ts";
import { cleanTmp } from "../store/tmp.ts";
import { chrootRun, modulesChanged, withChrootMounts, withLayerRoot } from "./chroot.ts";
import { planLayeredInitramfs, type LayeredInitramfs } from "./initramfs-plan.ts";
import { composefsDigests, knownDigests } from "./known-digests.ts";
import { readUpper, type UpperEntry } from "./upper.ts";
import { aptCommands, CHROOT_APT_ETC, headersPackage, needsHeaders, planLayer, planReapply, simulatedInstalls, type LayerPlan, type LayerRequest } from "./plan.ts";

export interface LayerResult extends StageResult {
  plan: LayerPlan;
  /** Headers added for DKMS (linux-headers-<kver> of the deployment's kernel), if any. */
  headers?: string;
  /** The deployment's kernel, the one DKMS built for. */
  kernel?: string;
  /** `dkms status -k <kver>` lines after the run. */
  dkms: string[];
  /** Kernel versions whose /usr/lib/modules the layer changed. */
  modulesChanged: string[];
  /** Whether the lower deployment's initramfs serves this one (initramfs-plan.ts). */
  initramfs: LayeredInitramfs;
  seconds: { apt: number; stage: number; total: number };
}

export interface LayerOptions {
  sysroot: string;
  /** The deployment the request is made against. */
  from: string;
  request: LayerRequest;
  /**
   * apt's configuration directory on this machine to use instead of the tree's /etc/apt: on a
   * booted system its live /etc/apt, where the administrator keeps sources and keys (the image's
   * /etc/apt is only the default the local /etc overlay starts from).
   */
  aptConfig?: string;
  /** Build the initramfs with dracut even when the lower deployment's would serve. */
  rebuildInitramfs?: boolean;
  log?: (m: string) => void;
}

/** The bootStaged option that reuses the lower deployment's initramfs, when the layer allows it. */
export function lowerInitramfsOf(r: LayerResult): { lowerInitramfsOf?: string } {
  return r.initramfs.reuseLower ? { lowerInitramfsOf: r.plan.lower } : {};
}

/** Where apt keeps its package lists between layer runs: the store's cache, never the image. */
export function aptListsDir(l: StoreLayout): string {
  return join(l.cache, "apt-lists");
}

export async function layerPackages(o: LayerOptions): Promise<LayerResult> {
  return withStoreLocked(o.sysroot, `layer ${o.request.install.map((p) => `+${p}`).concat(o.request.remove.map((p) => `-${p}`)).join(" ")}`, o.log, (l, deployments, sysroot) => {
    const from = deployments.find((m) => m.id === o.from);
    if (!from) throw new Error(`deployment ${o.from} not found in ${l.deploy}`);
    return applyPlan(l, sysroot, planLayer({ from, deployments, request: o.request }), deployments, o.log ?? (() => {}), o.aptConfig, o.rebuildInitramfs);
  });
}

/**
 * For `particle upgrade`: after staging the new base image as deployment `baseId`, the packages
 * layered on `previous` (the deployment being upgraded) are installed onto it, giving one more
 * deployment (base + the same set). Returns undefined when `previous` has no layered packages: the
 * base itself is then the upgrade. The caller makes the returned deployment bootable.
 */
export async function reapplyLayers(o: { sysroot: string; baseId: string; previous: Manifest; aptConfig?: string; rebuildInitramfs?: boolean; log?: (m: string) => void }): Promise<LayerResult | undefined> {
  if (!o.previous.layered?.length) return undefined;
  return withStoreLocked(o.sysroot, `layer (re-apply onto ${o.baseId})`, o.log, (l, deployments, sysroot) => {
    const base = deployments.find((m) => m.id === o.baseId);
    if (!base) throw new Error(`deployment ${o.baseId} not found in ${l.deploy}`);
    return applyPlan(l, sysroot, planReapply({ base, previous: o.previous })!, deployments, o.log ?? (() => {}), o.aptConfig, o.rebuildInitramfs);
  });
}

async function withStoreLocked<T>(sysrootArg: string, what: string, log: ((m: string) => void) | undefined, fn: (l: StoreLayout, ds: Manifest[], sysroot: string) => Promise<T>): Promise<T> {
  // Absolute: overlayfs refuses relative layer paths.
  const sysroot = resolve(sysrootArg);
  const l = storeLayout(sysroot);
  initStore(l);
  const lock = acquireLock(l.lock, what, log ?? (() => {}));
  try {
    cleanTmp(l);
    return await fn(l, listDeployments(l), sysroot);
  } finally {
    cleanTmp(l);
    lock.release();
  }
}

async function applyPlan(l: StoreLayout, sysroot: string, plan: LayerPlan, deployments: Manifest[], log: (m: string) => void, aptConfig?: string, rebuildInitramfs = false): Promise<LayerResult> {
  const t0 = performance.now();
  const secs = (a: number, b = performance.now()) => Number(((b - a) / 1000).toFixed(3));
  const lower = deployments.find((m) => m.id === plan.lower)!;
  const work = mkdtempSync(join(l.tmp, "layer-"));
  const scratch = join(work, "scratch");
  mkdirSync(scratch);
  log(`layering onto deployment ${lower.id} (${plan.mode}): ${plan.packages.length ? plan.packages.join(" ") : "no packages (the base image as it is)"}`);
  try {
    return await withLayerRoot(sysroot, lower, work, async ({ root, upper, lower: lowerDir }) => {
      const kver = lower.kernel ?? kernelVersions(root).at(-1);
      const aptEtc = aptConfig ? CHROOT_APT_ETC : undefined;
      const cmds = aptCommands(plan, [], aptEtc);
      let headers: string | undefined;
      let dkms: string[] = [];
      if (cmds.install || cmds.purge.length) {
        await withChrootMounts(root, aptListsDir(l), scratch, aptConfig ? { from: aptConfig, to: CHROOT_APT_ETC } : undefined, async () => {
          log("apt-get update");
          await chrootRun(root, cmds.update, "apt-get update");
          for (const c of cmds.purge) {
            const what = c.includes("autoremove") ? "apt-get autoremove --purge" : `apt-get purge ${plan.aptPurge.join(" ")}`;
            log(what);
            await chrootRun(root, c, what);
          }
          if (cmds.simulate) {
            const sim = await chrootRun(root, cmds.simulate, "apt-get install (resolving)");
            const dkmsInTree = existsSync(join(root, "usr/sbin/dkms"));
            if (kver && needsHeaders({ simulated: simulatedInstalls(sim.stdout), dkmsInTree, headersInTree: existsSync(join(root, "usr/src", `linux-headers-${kver}`)) })) {
              headers = headersPackage(kver);
              log(`DKMS: adding ${headers} to build modules for the deployment's kernel ${kver}`);
            }
            const install = aptCommands(plan, headers ? [headers] : [], aptEtc).install!;
            log(`apt-get install ${install.slice(install.indexOf("install") + 1).join(" ")}`);
            await chrootRun(root, install, "apt-get install");
          }
          if (kver && existsSync(join(root, "usr/sbin/dkms"))) {
            // The packages' postinst builds for `uname -r` (the host's) and the newest kernel it
            // sees; this makes the deployment's own kernel explicit and fails loudly if it cannot.
            await chrootRun(root, ["dkms", "autoinstall", "-k", kver], `dkms autoinstall for ${kver}`);
            dkms = (await chrootRun(root, ["dkms", "status", "-k", kver], "dkms status")).stdout.split("\n").filter((x) => x.trim());
            for (const d of dkms) log(`DKMS: ${d}`);
          }
        }, log);
      }
      const changed = modulesChanged(upper);
      const entries = readUpper(upper, lowerDir);
      const initramfs = planLayeredInitramfs({ kver, entries, force: rebuildInitramfs });
      log(initramfs.reuseLower ? `initramfs: the lower deployment ${lower.id}'s serves (${initramfs.why})` : `initramfs: dracut builds a new one (${initramfs.why})`);
      const tApt = performance.now();
      const r = await stage({
        sysroot, source: `dir:${root}`, format: lower.format, log, lockHeld: true, knownDigest: lowerDigests(l, lower, entries, log),
        // The image the base came from stays tracked: `particle upgrade` of a layered deployment
        // fetches the new image and re-applies the packages onto it.
        manifest: { source: `layer:${lower.id}`, base: plan.base, layered: plan.packages, ...imageOf(deployments, plan.base.id, lower) },
      });
      return {
        ...r, plan, headers, kernel: kver, dkms, modulesChanged: changed, initramfs,
        seconds: { apt: secs(t0, tApt), stage: secs(tApt), total: secs(t0) },
      };
    }, log);
  } finally {
    // Never remove through a mount: if anything is still mounted, this throws and work/ stays.
    unmountTree(work, { lazy: true });
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * For a composefs lower: the digests of the files the layer left alone, from the lower's image,
 * so staging reads only what apt wrote. Other formats (and an unreadable image) read everything.
 */
function lowerDigests(l: StoreLayout, lower: Manifest, entries: readonly UpperEntry[], log: (m: string) => void): ((rel: string) => string | undefined) | undefined {
  if (lower.format !== "composefs") return undefined;
  const path = imagePath(l, lower.imageDigest, "composefs");
  try {
    return knownDigests(composefsDigests(readFileSync(path), path), entries);
  } catch (e) {
    log(`warning: the lower deployment's image ${path} could not be read (${(e as Error).message}); staging reads every file`);
    return undefined;
  }
}

/** The OCI origin a layered deployment inherits: its base's, else the layer below's (itself inherited). */
function imageOf(deployments: readonly Manifest[], baseId: string, lower: Manifest): Pick<Manifest, "oci"> {
  const oci = deployments.find((m) => m.id === baseId)?.oci ?? lower.oci;
  return oci ? { oci } : {};
}
