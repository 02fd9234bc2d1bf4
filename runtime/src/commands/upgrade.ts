// `particle upgrade [--check]`: ask the tracked reference for its digest (skopeo inspect) and stage
// it only when it differs from the booted deployment's (or --from ID's, on a sysroot that is not
// running, where the new deployment is staged without a boot entry unless --esp is given).
import { readManifests } from "../deployments/read.ts";
import { resolveWhere } from "../deployments/where.ts";
import { inspectDigest } from "../oci/skopeo.ts";
import { parseImageRef } from "../oci/transport.ts";
import { planUpgrade, trackedDeployment } from "../oci/upgrade-plan.ts";
import stageCommand from "./stage.ts";

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const w = resolveWhere(opts);
  const manifests = readManifests(w.sysroot);
  const fromId = opts.from !== undefined ? String(opts.from) : w.bootedId;
  const tracked = trackedDeployment(manifests, fromId);
  const img = parseImageRef(tracked.oci.reference);
  if (!img) throw new Error(`deployment ${tracked.id}: recorded reference ${JSON.stringify(tracked.oci.reference)} is not an image reference`);
  const current = await inspectDigest(img);
  const plan = planUpgrade(manifests, fromId, current);
  const say = (m: string) => process.stderr.write(`particle: ${m}\n`);
  if (plan.action === "none" || opts.check) {
    if (opts.json) {
      process.stdout.write(JSON.stringify({ reference: plan.reference, booted: tracked.oci.sourceDigest, available: current, updateAvailable: plan.action === "stage", ...(plan.action === "none" && plan.stagedId ? { stagedId: plan.stagedId } : {}) }) + "\n");
    } else if (plan.action === "none") {
      say(plan.reason === "current" ? `no update: ${plan.reference} is still ${plan.digest}` : `no update to stage: ${plan.reference} ${plan.digest} is already staged as deployment ${plan.stagedId}`);
    } else {
      process.stdout.write(`update available: ${plan.reference}\n  booted:    ${plan.from}\n  available: ${plan.to}\n`);
    }
    return;
  }
  say(`update: ${plan.reference} ${plan.from} → ${plan.to}`);
  await stageCommand([plan.reference], opts);
}
