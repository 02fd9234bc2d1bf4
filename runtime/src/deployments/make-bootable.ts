// After staging on a running system: build the new deployment's initramfs from its own kernel,
// carry /etc over from the booted deployment (again at shutdown by particle-finalize), then write
// its entry, which makes it the default. For `particle stage` (and the QEMU cycle).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { getArg, splitCmdline, argKey } from "../bls/kargs.ts";
import { writeDeploymentEntry } from "../bootloader/deploy-entry.ts";
import { particleEntries, readEntries } from "../bootloader/entries.ts";
import { buildInitramfs, pickKernel } from "../install/initramfs.ts";
import { carryOverEtc } from "./etc-carry.ts";
import { readManifests } from "./read.ts";
import { withDeploymentMounted } from "./mounted.ts";
import { checkSpace, freeBytes } from "./space.ts";
import { initramfsInputsKey, reusableInitramfs } from "./initramfs-reuse.ts";
import { acquireLock } from "../store/lock.ts";
import { storeLayout } from "../store/layout.ts";
import { cleanTmp } from "../store/tmp.ts";

/** Arguments particle sets itself; the rest of the booted entry's options carry over. */
const OWN_ARGS = new Set(["root", "rw", "ro", "particle.deploy", "particle.image"].map(argKey));

/** Pure: the extra kernel arguments of an entry's options (console=, quiet, …). */
export function extraArgsOf(options: string): string[] {
  return splitCmdline(options).filter((a) => !OWN_ARGS.has(argKey(a)));
}

export function rootUuidOf(options: string): string | undefined {
  const root = getArg(splitCmdline(options), "root");
  return root?.startsWith("UUID=") ? root.slice(5) : undefined;
}

/**
 * Before staging on a running system: is there room on the ESP for one more kernel and initramfs?
 * The new ones are not built yet, so the booted entry's files (or `fallback` bytes) are the
 * estimate. Returns the error (with the numbers) or undefined.
 */
export function precheckEsp(esp: string, bootedId: string | undefined, fallback = 128 * 1024 * 1024): Error | undefined {
  const e = bootedId ? particleEntries(readEntries(esp)).find((x) => x.deployId === bootedId) : undefined;
  let needed = 0;
  for (const p of e ? [e.linux, ...e.initrd] : []) {
    try { if (p) needed += statSync(join(esp, p)).size; } catch { /* estimate from the rest */ }
  }
  return checkSpace([{ what: `ESP ${esp} (kernel and initramfs of the new deployment, estimated from the booted one)`, needed: needed || fallback, free: freeBytes(esp) }]);
}

export interface MakeBootableOptions {
  sysroot: string;
  esp: string;
  id: string;
  /** The running deployment, whose entry gives the root UUID and kernel arguments, and whose /etc carries over. */
  bootedId?: string;
  rootUuid?: string;
  extraArgs?: string[];
  initramfs?: string;
  /**
   * A layered deployment whose layer left the initramfs inputs alone (layer/initramfs-plan.ts):
   * the deployment below it, whose boot entry's initramfs it boots with.
   */
  lowerInitramfsOf?: string;
  /**
   * The deployment whose initramfs is reused when the new one's inputs are the same (default: the
   * booted one). An upgrade compares with the deployment it upgrades.
   */
  compareInitramfsWith?: string;
  log: (m: string) => void;
}

/**
 * The ESP path of the lower deployment's initramfs, when its entry boots the same kernel (same
 * bytes) as the new deployment; else undefined, with a log line saying why it does not serve.
 */
function lowerInitramfs(o: MakeBootableOptions, manifest: { kernel?: string }, kernelPath: string): string | undefined {
  const id = o.lowerInitramfsOf;
  if (!id) return undefined;
  const e = particleEntries(readEntries(o.esp)).find((x) => x.deployId === id);
  // Not the last word: the inputs comparison with the booted (or upgraded) deployment comes next.
  const fallback = (why: string) => { o.log(`initramfs: not the lower deployment's: ${why}`); return undefined; };
  if (!e?.initrd[0] || !e.linux) return fallback(`the lower deployment ${id} has no boot entry with an initramfs on ${o.esp}`);
  const path = join(o.esp, e.initrd[0].replace(/^\/+/, ""));
  if (!existsSync(path)) return fallback(`the lower deployment ${id}'s initramfs ${path} is missing`);
  const lowerKernel = join(o.esp, e.linux.replace(/^\/+/, ""));
  if (!existsSync(lowerKernel) || !readFileSync(lowerKernel).equals(readFileSync(kernelPath))) {
    return fallback(`the lower deployment ${id}'s entry boots another kernel than ${manifest.kernel ?? "the new deployment's"}`);
  }
  return path;
}

/** Copies the booted entry's initramfs to `out` when the new deployment would get the same one from
 *  dracut (initramfs-reuse.ts); says which way it went. */
async function reuseBootedInitramfs(o: MakeBootableOptions, tree: string,
  k: { kver: string; path: string }, out: string, mnt: string): Promise<boolean> {
  const refId = o.compareInitramfsWith ?? o.bootedId;
  const bootedInitrd = refId ? particleEntries(readEntries(o.esp)).find((e) => e.deployId === refId)?.initrd[0] : undefined;
  if (!refId || refId === o.id || !bootedInitrd) return false;
  const t = Date.now();
  const newKey = initramfsInputsKey(tree, k.kver, k.path);
  mkdirSync(mnt);
  const bootedKey = await withDeploymentMounted(o.sysroot, refId, mnt, async (booted) => {
    const bk = pickKernelOrNull(booted, k.kver);
    return bk ? initramfsInputsKey(booted, k.kver, bk) : "";
  }, o.log);
  const r = reusableInitramfs({ esp: o.esp, bootedInitrd, bootedKey, newKey });
  const secs = ((Date.now() - t) / 1000).toFixed(1);
  if ("why" in r) {
    o.log(`building a new initramfs: ${r.why} (compared in ${secs} s)`);
    return false;
  }
  copyFileSync(r.path, out);
  o.log(`reusing ${refId === o.bootedId ? "the booted deployment's" : `deployment ${refId}'s`} initramfs ${bootedInitrd}: same kernel and initramfs inputs (compared in ${secs} s; dracut skipped)`);
  return true;
}

function pickKernelOrNull(tree: string, kver: string): string | null {
  try { return pickKernel(tree, kver).path; } catch { return null; }
}

/** The booted deployment's local /etc changes onto deployment `o.id` (mounted at `tree`), before its
 *  entry makes it the default: the ESP mount unit that install wrote is one of them. */
async function carryEtcAtStage(o: Pick<MakeBootableOptions, "sysroot" | "bootedId" | "id" | "log">, tree: string): Promise<void> {
  if (!o.bootedId || o.bootedId === o.id) return;
  const r = await carryOverEtc(o.sysroot, o.bootedId, o.id, join(tree, "etc"), "stage");
  for (const c of r.conflicts) o.log(`warning: /etc/${c.path}: local ${c.local} where the new image has a ${c.image}; saved as ${c.savedAs}`);
}

/**
 * A sealed stage's counterpart of makeBootable: its UKI comes from `particle seal`, but /etc must
 * carry over all the same (the booted deployment's ESP mount, without which systemd-bless-boot
 * cannot bless the new entry). Call before the UKI goes onto the ESP.
 */
export async function carryEtcForSealed(o: Pick<MakeBootableOptions, "sysroot" | "bootedId" | "id" | "log">): Promise<void> {
  if (!o.bootedId || o.bootedId === o.id) return;
  const l = storeLayout(o.sysroot);
  const lock = acquireLock(l.lock, `carrying /etc to deployment ${o.id}`, o.log);
  let work: string | undefined;
  try {
    cleanTmp(l);
    const mnt = (work = mkdtempSync(join(l.tmp, "etc-carry-")));
    await withDeploymentMounted(o.sysroot, o.id, mnt, (tree) => carryEtcAtStage(o, tree), o.log);
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
    lock.release();
  }
}

export async function makeBootable(o: MakeBootableOptions): Promise<{ entry: string }> {
  const manifest = readManifests(o.sysroot).find((m) => m.id === o.id);
  if (!manifest) throw new Error(`deployment ${o.id} not found in ${o.sysroot}/particle/deploy`);
  const bootedEntry = o.bootedId ? particleEntries(readEntries(o.esp)).find((e) => e.deployId === o.bootedId) : undefined;
  const rootUuid = o.rootUuid ?? (bootedEntry && rootUuidOf(bootedEntry.options));
  if (!rootUuid) throw new Error(`deployment ${o.id}: cannot tell the root filesystem UUID (no booted entry with root=UUID=; pass it explicitly)`);
  const extraArgs = o.extraArgs ?? (bootedEntry ? extraArgsOf(bootedEntry.options) : []);

  // A writer like stage: under the store lock, its work (and the deployments it mounts) under
  // tmp/, so that the next command unmounts and removes what a kill left.
  const l = storeLayout(o.sysroot);
  const lock = acquireLock(l.lock, `making deployment ${o.id} bootable`, o.log);
  let work: string | undefined;
  try {
    cleanTmp(l);
    const dir = (work = mkdtempSync(join(l.tmp, "boot-files-")));
    const kernel = join(dir, "vmlinuz");
    const initrd = join(dir, "initrd.img");
    const mnt = join(dir, "mnt");
    mkdirSync(mnt);
    await withDeploymentMounted(o.sysroot, o.id, mnt, async (tree) => {
      const k = pickKernel(tree, manifest.kernel);
      copyFileSync(k.path, kernel);
      const lower = o.initramfs ? undefined : lowerInitramfs(o, manifest, k.path);
      if (o.initramfs) copyFileSync(o.initramfs, initrd);
      else if (lower) {
        copyFileSync(lower, initrd);
        o.log(`reusing the lower deployment ${o.lowerInitramfsOf}'s initramfs (the layer added no early-boot input; dracut skipped)`);
      } else if (!(await reuseBootedInitramfs(o, tree, k, initrd, join(dir, "booted")))) {
        await buildInitramfs(tree, k.kver, initrd, o.log);
      }
      await carryEtcAtStage(o, tree);
    }, o.log);
    const w = writeDeploymentEntry({ esp: o.esp, manifest, rootUuid, kernel, initrd, extraArgs });
    return { entry: w.file };
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
    lock.release();
  }
}

/** makeBootable for a deployment just staged: a failure names it and says the default is unchanged. */
export async function bootStaged(o: MakeBootableOptions): Promise<string> {
  try {
    return (await makeBootable(o)).entry;
  } catch (e) {
    throw new Error(`deployment ${o.id} was staged but not made bootable (the current default is unchanged): ${(e as Error).message}`);
  }
}
