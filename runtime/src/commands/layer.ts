// particle layer install|remove|list: packages layered onto a deployment with apt (layer/).
import { UsageError } from "../cli.ts";
import { bootStaged, precheckEsp } from "../deployments/make-bootable.ts";
import { readStatus } from "../deployments/read.ts";
import { resolveWhere, stageBootTarget } from "../deployments/where.ts";
import { layerPackages, lowerInitramfsOf, reapplyLayers, type LayerResult } from "../layer/layer.ts";
import { baseOf } from "../layer/plan.ts";
import { aptConfigFor } from "../layer/apt-config.ts";
import { listDeployments } from "../store/deployments.ts";
import { storeLayout } from "../store/layout.ts";

/**
 * The deployment a layer command works on: --from, else the next boot's (a staged layer stacks on
 * the last one, as rpm-ostree's pending deployment does), else the booted one, else the newest.
 */
function fromDeployment(opts: Record<string, any>): string {
  if (opts.from !== undefined) return String(opts.from);
  const w = resolveWhere(opts);
  const next = readStatus(w).spec.defaultDeployment;
  const id = next ?? w.bootedId ?? listDeployments(storeLayout(w.sysroot)).at(-1)?.id;
  if (!id) throw new Error(`no deployment in ${w.sysroot}/particle/deploy to layer onto (stage one first)`);
  return id;
}

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  const [action, ...packages] = args;
  const log = (m: string) => process.stderr.write(`particle: ${m}\n`);
  if (action === "list") {
    if (packages.length) throw new UsageError("layer list takes no packages");
    const id = fromDeployment(opts);
    const m = listDeployments(storeLayout(String(opts.sysroot))).find((d) => d.id === id);
    if (!m) throw new Error(`deployment ${id} not found`);
    const out = { id: m.id, base: baseOf(m), layered: m.layered ?? [] };
    if (opts.json) process.stdout.write(JSON.stringify(out) + "\n");
    else {
      process.stderr.write(`deployment ${m.id}: base image ${out.base.imageDigest.slice(0, 12)}… (deployment ${out.base.id}), ${out.layered.length} layered package(s)\n`);
      for (const p of out.layered) process.stdout.write(`${p}\n`);
    }
    return;
  }
  if (action !== "install" && action !== "remove" && action !== "reapply") throw new UsageError(`layer ${action ?? ""}: expected install, remove, list or reapply`);
  if (action === "reapply" ? packages.length > 0 || opts.onto === undefined : packages.length === 0) {
    throw new UsageError(action === "reapply" ? "layer reapply takes --onto ID and no packages" : `layer ${action}: name at least one package`);
  }
  const boot = stageBootTarget(opts);
  if (boot) {
    const e = precheckEsp(boot.esp, boot.bootedId);
    if (e) throw e;
  }
  const sysroot = String(opts.sysroot);
  const from = fromDeployment(opts);
  const aptConfig = aptConfigFor(opts);
  const rebuildInitramfs = opts.rebuildInitramfs === true;
  let r: LayerResult;
  if (action === "reapply") {
    const previous = listDeployments(storeLayout(sysroot)).find((d) => d.id === from);
    if (!previous) throw new Error(`deployment ${from} not found`);
    const got = await reapplyLayers({ sysroot, baseId: String(opts.onto), previous, aptConfig, rebuildInitramfs, log });
    if (!got) throw new Error(`deployment ${from} has no layered packages to re-apply`);
    r = got;
  } else {
    r = await layerPackages({ sysroot, from, aptConfig, rebuildInitramfs, request: action === "install" ? { install: packages, remove: [] } : { install: [], remove: packages }, log });
  }
  let entry: string | undefined;
  // A layer that only added modules (DKMS) boots with the lower deployment's initramfs, as
  // rpm-ostree's do; otherwise makeBootable compares with the booted one's inputs or runs dracut.
  if (boot) entry = await bootStaged({ ...boot, id: r.id, log, ...lowerInitramfsOf(r) });
  if (opts.json) {
    const { plan, ...rest } = r;
    process.stdout.write(JSON.stringify({ ...rest, from: plan.from, lower: plan.lower, mode: plan.mode, base: plan.base, layered: plan.packages, added: plan.added, removed: plan.removed, entry }) + "\n");
  } else {
    process.stderr.write(`staged deployment ${r.id}: base ${r.plan.base.id} + ${r.plan.packages.length ? r.plan.packages.join(" ") : "no layered packages"} (apt ${r.seconds.apt} s, staging ${r.seconds.stage} s)${entry ? `; boot entry ${entry} is the next default` : ""}\n`);
    process.stdout.write(`${r.id}\n`);
  }
}
