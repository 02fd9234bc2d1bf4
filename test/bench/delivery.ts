// The delivery section of `make bench` (issue 10, section 5): what an update that changes one
// package costs to download from a registry, for a chunked image (`particle image chunk`, layers
// along dpkg packages) against the baseline of the same run, a plain two-layer image (what a
// Containerfile build gives). Workload: delivery-workload.ts (≥ 500 MB, one mid-sized package changed).
//
// Method: both images are pushed to a real registry (docker-registry on 127.0.0.1) and machines pull
// through a counting proxy. Per round and image: a fresh sysroot stages v1 (`particle stage
// docker://…:latest`), `latest` is moved to v2, and `particle upgrade --from 1` stages the update;
// the bytes the registry served during the upgrade (response bodies: manifests, config, blobs)
// are the update's download. Byte counts do not depend on the machine; times are reported for reading.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isBlobGet } from "../host/lib/counting-proxy.ts";
import { deliveryWorkload, type DeliveryWorkload } from "./delivery-workload.ts";
import { startBenchRegistry, type BenchRegistry } from "./delivery-registry.ts";
import { BenchError, fmtBytes, fmtS, fmtX, log, median, table, timed, type BenchContext, type BenchSection, type SectionResult, type TargetResult } from "./lib.ts";

const TARGET_CHANGED = 2;
const TARGET_BASELINE = 10;
const NO_VERIFY = "--insecure-no-verify-signatures";

export interface UpdateCost {
  /** Bytes served while staging v1 (the first install). */
  installBytes: number;
  /** Bytes served while `particle upgrade` staged v2. */
  updateBytes: number;
  /** The blobs fetched by the update, by layer name. */
  updateBlobs: Array<{ layer: string; bytes: number }>;
  installS: number;
  updateS: number;
}

const VARIANTS = ["chunked", "baseline", "appended"] as const;
type Variant = (typeof VARIANTS)[number];
const LABEL: Record<Variant, string> = {
  chunked: "chunked (particle image chunk)",
  baseline: "baseline (2 layers, base rebuilt)",
  appended: "appended (v1 + change layer; informational)",
};

const digestOf = (url: string) => /sha256:[0-9a-f]{64}/.exec(url)?.[0] ?? url;

/** One machine: a fresh sysroot installs v1 of `name`, then upgrades to v2. */
async function installThenUpdate(ctx: BenchContext, w: DeliveryWorkload, reg: BenchRegistry, name: Variant, sysroot: string): Promise<UpdateCost> {
  const layout = w[name];
  await reg.push(layout, "v1", name, "latest");
  reg.proxy.reset();
  const install = await timed([ctx.particle, "stage", reg.ref(name, "latest"), "--sysroot", sysroot, "--json", NO_VERIFY], { env: reg.env });
  const installBytes = reg.proxy.bytes();
  await reg.push(layout, "v2", name, "latest");
  reg.proxy.reset();
  const update = await timed([ctx.particle, "upgrade", "--sysroot", sysroot, "--from", "1", "--json", NO_VERIFY], { env: reg.env });
  const j = JSON.parse(update.stdout.trim().split("\n").at(-1)!);
  if (j.id !== "2") throw new BenchError(`particle upgrade of ${name} staged ${JSON.stringify(j)}, expected deployment 2`);
  // The update's new contents are exactly the changed files: the deployment is v2, not something else.
  if (j.objectsAdded !== w.changedFiles) throw new BenchError(`particle upgrade of ${name} added ${j.objectsAdded} objects, expected the ${w.changedFiles} changed files`);
  const updateBlobs = reg.proxy.served.filter(isBlobGet).map((s) => ({ layer: w.layerNames[digestOf(s.url)] ?? `config ${digestOf(s.url).slice(7, 19)}`, bytes: s.bytes }));
  return { installBytes, updateBytes: reg.proxy.bytes(), updateBlobs, installS: install.wallS, updateS: update.wallS };
}

const section: BenchSection = {
  name: "delivery",
  title: "Delivery: download size of a one-package update, chunked vs a two-layer image (issue 10 §5)",
  async run(ctx: BenchContext): Promise<SectionResult> {
    const w = await deliveryWorkload(ctx);
    log(`workload: ${fmtBytes(w.treeBytes)} tree; update: ${w.changedFiles} files changed, ${fmtBytes(w.changedBytes)}, ${fmtBytes(w.changedCompressed)} compressed (gzip -6)`);
    const work = join(w.dir, "work");
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const reg = await startBenchRegistry(join(work, "registry"));
    const runs: Record<Variant, UpdateCost[]> = { chunked: [], baseline: [], appended: [] };
    try {
      for (let i = 0; i < ctx.runs; i++) {
        for (const name of VARIANTS) {
          const s = join(work, `${name}-${i}`);
          runs[name].push(await installThenUpdate(ctx, w, reg, name, s));
          rmSync(s, { recursive: true, force: true });
          log(`round ${i + 1} ${name}: update fetched ${fmtBytes(runs[name].at(-1)!.updateBytes)}`);
        }
      }
    } finally {
      await reg.stop();
      if (!ctx.keep) rmSync(work, { recursive: true, force: true });
    }
    const med = (xs: UpdateCost[], f: (c: UpdateCost) => number) => median(xs.map(f));
    const chunked = med(runs.chunked, (c) => c.updateBytes);
    const baseline = med(runs.baseline, (c) => c.updateBytes);
    const ratioChanged = chunked / w.changedCompressed;
    const ratioBaseline = baseline / chunked;
    console.log(table([
      ["image", "install v1 (served)", "update v2 (served, median)", "install", "update", "runs (update bytes)"],
      ...VARIANTS.map((n) => [
        LABEL[n],
        fmtBytes(med(runs[n], (c) => c.installBytes)), fmtBytes(med(runs[n], (c) => c.updateBytes)),
        fmtS(med(runs[n], (c) => c.installS)), fmtS(med(runs[n], (c) => c.updateS)), runs[n].map((c) => String(c.updateBytes)).join(", "),
      ]),
    ]));
    for (const n of VARIANTS) {
      console.log(`\n${n} update fetched: ${runs[n][0]!.updateBlobs.map((b) => `${b.layer} ${fmtBytes(b.bytes)}`).join("; ")}`);
    }
    console.log(`\nchanged files: ${w.changedFiles}, ${fmtBytes(w.changedBytes)}, ${fmtBytes(w.changedCompressed)} compressed`);
    console.log(`chunked fetched / compressed changed files: ${fmtX(ratioChanged)} (target ≤ ${TARGET_CHANGED}×)`);
    console.log(`baseline fetched / chunked fetched: ${fmtX(ratioBaseline)} (target ≥ ${TARGET_BASELINE}×)`);
    // Appending the update as a layer fetches little now, but ships the old files underneath and
    // defers the cost to the next rebuild of the base, which fetches the whole tree.
    const appended = med(runs.appended, (c) => c.updateBytes);
    console.log(`appended fetched / chunked fetched: ${fmtX(appended / chunked)} (informational: image grows by ${fmtBytes(appended)} per update; the next base rebuild fetches ${fmtBytes(med(runs.appended, (c) => c.installBytes))})`);
    const targets: TargetResult[] = [
      { section: "delivery", name: "update download / changed files (compressed)", ratioLabel: "fetched / changed", ratio: ratioChanged, target: `≤ ${TARGET_CHANGED}×`, pass: ratioChanged <= TARGET_CHANGED },
      { section: "delivery", name: "update download: baseline / chunked", ratioLabel: "baseline / chunked", ratio: ratioBaseline, target: `≥ ${TARGET_BASELINE}×`, pass: ratioBaseline >= TARGET_BASELINE },
    ];
    return { name: "delivery", targets, failed: false, data: { workload: w, runs, ratioChanged, ratioBaseline, ratioAppended: appended / chunked } };
  },
};
export default section;
