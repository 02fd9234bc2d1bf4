// `particle upgrade [--check | --auto]`: ask the tracked reference for its digest (skopeo inspect) and
// stage it only when it differs from the booted deployment's (or --from ID's, on a sysroot that is not
// running, where the new deployment is staged without a boot entry unless --esp is given). Every run
// records what it found (auto/last-check.ts); --auto is the timer's: /etc/particle/upgrade.conf says
// whether to only check, stage, or stage and reboot.
import { readManifests } from "../deployments/read.ts";
import { inspectDigest } from "../oci/skopeo.ts";
import { parseImageRef } from "../oci/transport.ts";
import { planUpgrade, trackedDeployment } from "../oci/upgrade-plan.ts";
import stageCommand from "./stage.ts";
import type { Manifest } from "../manifest.ts";
import { bootStaged, precheckEsp } from "../deployments/make-bootable.ts";
import { resolveWhere, stageBootTarget } from "../deployments/where.ts";
import { lowerInitramfsOf, reapplyLayers } from "../layer/layer.ts";
import { aptConfigFor } from "../layer/apt-config.ts";
import { policyFromOptions } from "../oci/policy.ts";
import { particleEntries, readEntries } from "../bootloader/entries.ts";
import { existsSync } from "node:fs";
import { acquireLock } from "../store/lock.ts";
import { storeLayout } from "../store/layout.ts";
import { cleanTmp } from "../store/tmp.ts";
import { stage } from "../store/stage.ts";
import { isSealedEsp } from "../seal/stage-sealed.ts";

import { DEFAULT_CONFIG, parseUpgradeConf, UPGRADE_CONF, type UpgradeConfig } from "../auto/config.ts";
import { autoSteps } from "../auto/steps.ts";
import { writeLastCheck, type LastCheck } from "../auto/last-check.ts";
import { readFileSync } from "node:fs";
import { run } from "../system/exec.ts";
import type { Where } from "../deployments/read.ts";

/** What one run found, and whether it made a new deployment the next boot (only then may it reboot). */
type Found = Omit<LastCheck, "at" | "policy" | "error"> & { applied: boolean };

function readConfig(path: string): UpgradeConfig {
  if (!existsSync(path)) return DEFAULT_CONFIG;
  return parseUpgradeConf(readFileSync(path, "utf8"), path);
}

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const w = resolveWhere(opts);
  const say = (m: string) => process.stderr.write(`particle: ${m}\n`);
  const seen: { reference: string | null } = { reference: null };
  let config: UpgradeConfig | undefined;
  const record = ({ applied: _, ...f }: Found, error: string | null = null) =>
    writeLastCheck(w.sysroot, { ...f, error, at: new Date().toISOString(), policy: config?.policy ?? null });
  let found: Found;
  try {
    // Inside the try: a broken policy file is a failed check that status must show, not only a
    // line in the journal of a timer nobody watches.
    if (opts.auto) config = readConfig(String(opts.config ?? UPGRADE_CONF));
    const check = Boolean(opts.check) || config?.policy === "check";
    found = await upgradeOnce(w, opts, check, seen);
  } catch (e) {
    // The record is best effort here: the error itself is what the caller (and the journal) must see.
    try { record({ reference: seen.reference, result: "failed", digest: null, stagedId: null, applied: false }, (e as Error).message); } catch { /* store unwritable */ }
    throw e;
  }
  record(found);
  if (config && autoSteps(config.policy, found.applied).reboot) {
    // Only the running system reboots: a --sysroot or --cmdline run is someone else's machine.
    if (!w.bootedId || opts.cmdline !== undefined || opts.sysroot !== "/sysroot" && opts.sysroot !== undefined) {
      say(`policy reboot: deployment ${found.stagedId} is staged; not rebooting, ${w.sysroot} is not the running system`);
      return;
    }
    say(`policy reboot: rebooting into deployment ${found.stagedId}`);
    await run("systemctl", ["reboot"]);
  }
}

async function upgradeOnce(w: Where, opts: Record<string, any>, check: boolean, seen: { reference: string | null }): Promise<Found> {
  const manifests = readManifests(w.sysroot);
  const fromId = opts.from !== undefined ? String(opts.from) : w.bootedId;
  const tracked = trackedDeployment(manifests, fromId);
  seen.reference = tracked.oci.reference;
  const img = parseImageRef(tracked.oci.reference);
  if (!img) throw new Error(`deployment ${tracked.id}: recorded reference ${JSON.stringify(tracked.oci.reference)} is not an image reference`);
  const current = await inspectDigest(img);
  const boot = stageBootTarget(opts);
  // A sealed machine boots only UKIs sealed where the keys are: without one (--uki) an update can
  // be found and reported, not staged; the timer's run then records "available" instead of failing.
  if (boot && isSealedEsp(boot.esp) && !opts.uki && !check) {
    process.stderr.write("particle: this machine is sealed: an update is only reported; stage it with its UKI (particle stage REF --uki FILE, sealed by particle seal on the build host)\n");
    check = true;
  }
  const withEntry = boot ? new Set(particleEntries(readEntries(boot.esp)).flatMap((e) => (e.deployId ? [e.deployId] : []))) : undefined;
  const plan = planUpgrade(manifests, fromId, current, withEntry);
  const say = (m: string) => process.stderr.write(`particle: ${m}\n`);
  if (plan.action === "boot" && !check) {
    say(`${plan.reference} ${plan.digest} is staged as deployment ${plan.stagedId} but has no boot entry (an interrupted upgrade): making it bootable`);
    const entry = await bootStaged({ ...boot!, id: plan.stagedId, log: say });
    if (opts.json) process.stdout.write(JSON.stringify({ id: plan.stagedId, reference: plan.reference, sourceDigest: plan.digest, entry }) + "\n");
    else process.stdout.write(`${plan.stagedId}\n`);
    return { reference: plan.reference, result: "staged", digest: plan.digest, stagedId: plan.stagedId, applied: true };
  }
  if (plan.action === "none" && !check) {
    // Nothing to stage; still the writer the upgrade timer runs after a crash: clear what a killed
    // command left in tmp/ (and its mounts) under the lock, as staging would have.
    const l = storeLayout(w.sysroot);
    if (existsSync(l.tmp)) {
      const lock = acquireLock(l.lock, "upgrade", say);
      try { cleanTmp(l); } finally { lock.release(); }
    }
  }
  if (plan.action !== "stage" || check) {
    if (opts.json) {
      process.stdout.write(JSON.stringify({ reference: plan.reference, booted: tracked.oci.sourceDigest, available: current, updateAvailable: plan.action !== "none", ...(plan.action === "none" && plan.stagedId ? { stagedId: plan.stagedId } : {}) }) + "\n");
    } else if (plan.action === "none") {
      say(plan.reason === "current" ? `no update: ${plan.reference} is still ${plan.digest}` : `no update to stage: ${plan.reference} ${plan.digest} is already staged as deployment ${plan.stagedId}`);
    } else if (plan.action === "boot") {
      process.stdout.write(`update available: ${plan.reference}\n  booted:    ${tracked.oci.sourceDigest}\n  available: ${plan.digest} (staged as deployment ${plan.stagedId}, no boot entry yet)\n`);
    } else {
      process.stdout.write(`update available: ${plan.reference}\n  booted:    ${plan.from}\n  available: ${plan.to}\n`);
    }
    if (plan.action === "none") return { reference: plan.reference, result: plan.reason === "current" ? "current" : "staged", digest: plan.digest, stagedId: plan.stagedId ?? null, applied: false };
    return { reference: plan.reference, result: "available", digest: plan.action === "boot" ? plan.digest : plan.to, stagedId: plan.action === "boot" ? plan.stagedId : null, applied: false };
  }
  say(`update: ${plan.reference} ${plan.from} → ${plan.to}`);
  const id = tracked.layered?.length ? await upgradeLayered(tracked, plan.reference, opts, say) : await stageCommand([plan.reference], opts);
  return { reference: plan.reference, result: "staged", digest: plan.to, stagedId: id, applied: true };
}

/**
 * A layered deployment (particle layer) upgrades as rpm-ostree does: the new image is staged as a
 * base with no boot entry of its own, the same packages are installed onto it, and that
 * deployment becomes the next boot.
 */
async function upgradeLayered(tracked: Manifest, reference: string, opts: Record<string, any>, say: (m: string) => void): Promise<string> {
  const boot = stageBootTarget(opts);
  if (boot) {
    const e = precheckEsp(boot.esp, boot.bootedId);
    if (e) throw e;
  }
  const sysroot = String(opts.sysroot);
  // Held from the base's staging to the boot entry, as in `particle stage`: a cleanup in between
  // would remove deployments that nothing boots yet.
  const lock = boot ? acquireLock(storeLayout(sysroot).lock, `upgrade ${reference}`, say) : undefined;
  try {
    return await upgradeLayeredLocked(tracked, reference, opts, say, boot, sysroot);
  } finally {
    lock?.release();
  }
}

async function upgradeLayeredLocked(tracked: Manifest, reference: string, opts: Record<string, any>, say: (m: string) => void, boot: ReturnType<typeof stageBootTarget>, sysroot: string): Promise<string> {
  const base = await stage({ sysroot, source: reference, format: tracked.format, log: say, policy: policyFromOptions(opts), progressOut: process.stderr, requireKernel: boot !== undefined });
  say(`re-applying the layered packages of deployment ${tracked.id} (${tracked.layered!.join(" ")}) onto the new image, deployment ${base.id}`);
  const r = await reapplyLayers({ sysroot, baseId: base.id, previous: tracked, aptConfig: aptConfigFor(opts), log: say });
  // The new base has no entry of its own, so its initramfs is never there to reuse: makeBootable
  // compares the inputs with the deployment being upgraded (the same packages on the old image),
  // then runs dracut.
  const entry = boot ? await bootStaged({ ...boot, id: r!.id, log: say, ...lowerInitramfsOf(r!), compareInitramfsWith: tracked.id }) : undefined;
  if (opts.json) {
    const { plan, ...rest } = r!;
    process.stdout.write(JSON.stringify({ ...rest, base: plan.base, layered: plan.packages, entry }) + "\n");
  } else {
    process.stderr.write(`staged deployment ${r!.id}: the new image (deployment ${base.id}) + ${r!.plan.packages.join(" ")}${entry ? `; boot entry ${entry} is the next default` : ""}\n`);
    process.stdout.write(`${r!.id}\n`);
  }
  return r!.id;
}
