// The oci section of `make bench` (issue 6): `particle stage oci:…` of a ~1 GB multi-layer OCI
// layout against the floor of the same run: `skopeo copy` of the image to a directory plus
// `tar -x` of every layer into one directory. Then staging an update (the same layers plus one)
// into the same sysroot, where the old layers are already in the cache.
//
// Method: as the store section. Every contender is one external command, wall clock around
// spawn..exit, CPU from rusage; median of --runs rounds, floor and particle interleaved in each,
// the one that goes first alternating between rounds (the first command of a round met a quieter
// disk: the floor ran first in every round and was 12.7 s, 22.1 s, 31.2 s in one run). Issue 13 asks
// for ≤ 1.0× in every round, each round's particle against that round's floor.
// The layout's blobs are read once (cat, untimed) before each timed command, so both start from
// a warm page cache. `sync` after each, untimed, reported as writeback. Each round works in fresh
// directories on the same filesystem as the layout; they are removed after the round, untimed.
//
// Workload (built once, cached in $PARTICLE_CACHE/bench/oci-<key>/, key = hash of the recipe and of
// the input directories' file lists and sizes): five layers cut from this host's /usr, tarred by GNU
// tar (PAX, xattrs, numeric owners), alternately gzip -1 and zstd -3, plus a small update layer with
// whiteouts; v2 = v1 + one more small layer.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { blobFrom, writeManifest } from "./oci-blobs.ts";
import { BenchError, benchCacheDir, fmtBytes, fmtS, fmtX, log, median, sh, table, timed, type BenchContext, type BenchSection, type SectionResult, type TargetResult, type Timing } from "./lib.ts";

const LAYERS: Array<{ dirs: string[]; compression: "gzip" | "zstd" }> = [
  { dirs: ["usr/bin"], compression: "gzip" },
  { dirs: ["usr/include", "usr/lib/gcc"], compression: "zstd" },
  { dirs: ["usr/share/locale", "usr/share/doc"], compression: "gzip" },
  { dirs: ["usr/share/man", "usr/share/vim", "usr/lib/python3.11"], compression: "zstd" },
];
const RECIPE = "oci-v1: " + JSON.stringify(LAYERS) + " gzip -1 / zstd -3 -T2; update layer: .wh.vim, 200 bin files rewritten; v2 +1 layer";
const TARGET = 1.2;
/** Issue 13: every round's particle stage within its own round's floor. */
const ROUND_TARGET = 1.0;

interface Workload { dir: string; layout: string; bytes: number; compressed: number; layers: number }

async function workload(ctx: BenchContext): Promise<Workload> {
  const inputs = await sh(["sh", "-c", `cd / && find ${LAYERS.flatMap((l) => l.dirs).join(" ")} -printf '%p %s\\n' 2>/dev/null | sort | sha256sum`]);
  const key = createHash("sha256").update(RECIPE).update(inputs).digest("hex").slice(0, 16);
  const dir = join(benchCacheDir(), `oci-${key}`);
  const layout = join(dir, "layout");
  const meta = join(dir, "workload.json");
  if (existsSync(meta) && !ctx.rebuild) return JSON.parse(readFileSync(meta, "utf8"));
  for (const d of existsSync(benchCacheDir()) ? readdirSync(benchCacheDir()) : []) if (d.startsWith("oci-")) rmSync(join(benchCacheDir(), d), { recursive: true, force: true });
  log(`building the OCI workload in ${dir} (once; a few minutes)`);
  mkdirSync(join(layout, "blobs/sha256"), { recursive: true });
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const tar = (dirs: string[]) => `tar --create --format=pax --xattrs --xattrs-include='*' --numeric-owner --sort=name -C / ${dirs.join(" ")}`;
  const layers = [];
  for (const l of LAYERS) layers.push(await blobFrom(layout, tar(l.dirs), l.compression));
  // An update layer: a directory removed by a whiteout, 200 binaries rewritten (new bytes appended).
  const upd = join(dir, "update");
  await sh(["bash", "-c", `set -e; rm -rf ${upd}; mkdir -p ${upd}/usr/share ${upd}/usr/bin; touch ${upd}/usr/share/.wh.vim;
    cd /usr/bin; for f in $(find . -maxdepth 1 -type f -size +10k | sort | head -200); do cp -a $f ${upd}/usr/bin/$f; echo particle-bench >> ${upd}/usr/bin/$f; done`]);
  layers.push(await blobFrom(layout, `tar --create --format=pax --numeric-owner --sort=name -C ${upd} usr`, "gzip"));
  writeManifest(layout, "v1", layers);
  const extra = join(dir, "extra");
  await sh(["bash", "-c", `set -e; rm -rf ${extra}; mkdir -p ${extra}/opt/new; head -c 20000000 /usr/bin/$(ls /usr/bin | head -1) > ${extra}/opt/new/blob; cp -a /usr/share/perl ${extra}/opt/new/`]);
  writeManifest(layout, "v2", [...layers, await blobFrom(layout, `tar --create --format=pax --numeric-owner --sort=name -C ${extra} opt`, "zstd")]);
  rmSync(upd, { recursive: true, force: true });
  rmSync(extra, { recursive: true, force: true });
  const bytes = Number((await sh(["sh", "-c", `cd / && du -scb --apparent-size ${LAYERS.flatMap((l) => l.dirs).join(" ")} | tail -1 | cut -f1`])).trim());
  const w: Workload = { dir, layout, bytes, compressed: layers.reduce((a, l) => a + l.size, 0), layers: layers.length };
  writeFileSync(meta, JSON.stringify(w));
  return w;
}

const WARM = (layout: string) => ["sh", "-c", `cat ${layout}/blobs/sha256/* > /dev/null`];

/** skopeo copy to a directory, then tar -x of every layer blob (tar detects gzip/zstd). */
function floorCmd(w: Workload, out: string): string[] {
  const s = `set -e; skopeo --insecure-policy copy -q oci:${w.layout}:v1 dir:${out}/img; mkdir ${out}/x; ` +
    `for b in $(python3 -c "import json;print(' '.join(l['digest'][7:] for l in json.load(open('${out}/img/manifest.json'))['layers']))"); do ` +
    `tar -x --xattrs --xattrs-include='*' --numeric-owner -f ${out}/img/$b -C ${out}/x; done`;
  return ["bash", "-c", s];
}

const duBytes = async (p: string) => Number((await sh(["du", "-sb", p])).split("\t")[0]);

const section: BenchSection = {
  name: "oci",
  title: "OCI: particle stage oci: vs skopeo copy + tar -x (issue 6)",
  async run(ctx: BenchContext): Promise<SectionResult> {
    const w = await workload(ctx);
    log(`workload: ${w.layers} layers, ${fmtBytes(w.bytes)} of files, ${fmtBytes(w.compressed)} compressed (${w.layout})`);
    const work = join(w.dir, "work");
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const floor: Timing[] = [], stage: Timing[] = [], update: Timing[] = [];
    const writeback = { floor: [] as number[], stage: [] as number[] };
    let disk: Record<string, number> = {};
    let floorDisk = 0;
    let stageJson: any, updateJson: any;
    for (let i = 0; i < ctx.runs; i++) {
      const runFloor = async () => {
        const f = join(work, `floor-${i}`);
        mkdirSync(f);
        await sh(WARM(w.layout));
        floor.push(await timed(floorCmd(w, f)));
        writeback.floor.push((await timed(["sync"])).wallS);
        floorDisk = await duBytes(f);
        rmSync(f, { recursive: true, force: true });
        await timed(["sync"]);
      };
      if (i % 2 === 0) await runFloor();

      const s = join(work, `sysroot-${i}`);
      await sh(WARM(w.layout));
      const t = await timed([ctx.particle, "stage", `oci:${w.layout}:v1`, "--sysroot", s, "--json"]);
      stage.push(t);
      writeback.stage.push((await timed(["sync"])).wallS);
      stageJson = JSON.parse(t.stdout.trim().split("\n").at(-1)!);
      if (!stageJson.oci || stageJson.oci.layers !== w.layers) throw new BenchError(`particle stage reported ${JSON.stringify(stageJson.oci)}`);
      const l = (p: string) => join(s, "particle", p);
      disk = { cache: await duBytes(l("cache/oci")), objects: await duBytes(l("objects")), images: await duBytes(l("images")), tmp: await duBytes(l("tmp")) };
      // The update: same layers plus one, into the sysroot that has v1.
      await sh(WARM(w.layout));
      const u = await timed([ctx.particle, "stage", `oci:${w.layout}:v2`, "--sysroot", s, "--json"]);
      update.push(u);
      updateJson = JSON.parse(u.stdout.trim().split("\n").at(-1)!);
      await timed(["sync"]);
      rmSync(s, { recursive: true, force: true });
      await timed(["sync"]);
      if (i % 2 === 1) await runFloor();
    }
    rmSync(work, { recursive: true, force: true });
    const med = (ts: Timing[]) => median(ts.map((t) => t.wallS));
    const cpu = (ts: Timing[]) => median(ts.map((t) => t.userS + t.sysS));
    const ratio = med(stage) / med(floor);
    // particle syncs before publishing (crash safety), the floor leaves its writes dirty: the
    // durable comparison adds each one's untimed writeback.
    const durable = (ts: Timing[], wb: number[]) => median(ts.map((t, i) => t.wallS + wb[i]!));
    const durableRatio = durable(stage, writeback.stage) / durable(floor, writeback.floor);
    console.log(table([
      ["contender", "wall (median)", "cpu", "writeback", "runs (wall)"],
      ["floor: skopeo copy dir: + tar -x", fmtS(med(floor)), fmtS(cpu(floor)), fmtS(median(writeback.floor)), floor.map((t) => fmtS(t.wallS)).join(", ")],
      ["particle stage oci:…:v1", fmtS(med(stage)), fmtS(cpu(stage)), fmtS(median(writeback.stage)), stage.map((t) => fmtS(t.wallS)).join(", ")],
      ["particle stage oci:…:v2 (update, v1 cached)", fmtS(med(update)), fmtS(cpu(update)), "-", update.map((t) => fmtS(t.wallS)).join(", ")],
    ]));
    console.log(`\nparticle / floor: ${fmtX(ratio)} wall, ${fmtX(durableRatio)} wall + writeback (both durable), ${fmtX(cpu(stage) / cpu(floor))} cpu (target ≤ ${TARGET}×)`);
    const rounds = stage.map((t, i) => t.wallS / floor[i]!.wallS);
    const roundsCpu = stage.map((t, i) => (t.userS + t.sysS) / (floor[i]!.userS + floor[i]!.sysS));
    console.log(`each round, particle / that round's floor: ${rounds.map(fmtX).join(", ")} wall; ${roundsCpu.map(fmtX).join(", ")} cpu (issue 13: ≤ ${ROUND_TARGET}× in every round)`);
    console.log(`disk after staging v1: cache ${fmtBytes(disk.cache)}, objects ${fmtBytes(disk.objects)}, images ${fmtBytes(disk.images)}, tmp ${fmtBytes(disk.tmp)}; floor's copy + tree: ${fmtBytes(floorDisk)}`);
    console.log(`update v2: ${updateJson.objectsAdded} new objects, ${fmtBytes(updateJson.bytesAdded)} added`);
    const targets: TargetResult[] = [{
      section: "oci", name: "stage oci: (1 GB, 5 layers)", ratioLabel: "particle / floor", ratio, cpuRatio: cpu(stage) / cpu(floor),
      target: `≤ ${TARGET}×`, pass: ratio <= TARGET,
    }, {
      section: "oci", name: "stage oci:, durable (+ writeback)", ratioLabel: "particle / floor", ratio: durableRatio,
      target: `≤ ${TARGET}×`, pass: durableRatio <= TARGET,
    }, {
      section: "oci", name: `stage oci:, the worst of ${rounds.length} rounds (issue 13)`, ratioLabel: "particle / its round's floor", ratio: Math.max(...rounds),
      cpuRatio: Math.max(...roundsCpu), target: `≤ ${ROUND_TARGET}× every round`, pass: rounds.every((r) => r <= ROUND_TARGET),
    }];
    return {
      name: "oci", targets, failed: false,
      data: { workload: w, floorS: floor.map((t) => t.wallS), rounds, roundsCpu, stageS: stage.map((t) => t.wallS), updateS: update.map((t) => t.wallS), writeback, ratio, durableRatio, disk, floorDisk, stage: stageJson, update: updateJson },
    };
  },
};
export default section;
