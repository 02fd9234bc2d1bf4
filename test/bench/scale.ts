// The scale section of `make bench` (issue 13): a first stage of a synthesized ~630k-file tree (ten
// times the /usr workload's file count; many small files, deep and wide directories: synth.ts)
// against the copy floor of the same tree, its peak memory, its time per file against the 63k-file
// figure of the store section of the same run, and its metadata image against mkfs.erofs.
//
// Disk: a round writes a copy and a sysroot of the tree (~3 GB each); both are removed, untimed,
// before the next round, so a run needs room for one round only.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { imagePath, storeLayout } from "../../runtime/src/store/layout.ts";
import { fmtBytes, fmtInt, fmtS, fmtX, log, median, sh, table, timed, timedRss, type BenchContext, type BenchSection, type SectionResult, type TargetResult } from "./lib.ts";
import { synthWorkload } from "./synth.ts";

const WARM_SH = "find tree -type f -print0 | xargs -0 -P2 -n 2000 cat >/dev/null";

interface Round { copyS: number; copyCpuS: number; stageS: number; stageCpuS: number; maxRssMB: number; imageBytes: number; imageDigest: string }

/** The 63k-file figures of the store section, when it ran before this one (dist/bench/store.json). */
function storeFigures(outDir: string): { files: number; stageS: number; maxRssMB: number | null } | null {
  const p = join(outDir, "store.json");
  if (!existsSync(p)) return null;
  try {
    const j = JSON.parse(readFileSync(p, "utf8"));
    const stageS = j.results?.particleFirst?.medianS;
    const files = j.workload?.counts?.regularFiles;
    if (typeof stageS !== "number" || typeof files !== "number") return null;
    return { files, stageS, maxRssMB: j.results?.particleFirst?.maxRssMB ?? null };
  } catch {
    return null;
  }
}

export const scaleSection: BenchSection = {
  name: "scale",
  title: "Scale: a first stage of ~630k small files vs the copy floor; memory and time per file vs the 63k-file tree",
  async run(ctx: BenchContext): Promise<SectionResult> {
    const w = await synthWorkload();
    const m = w.manifest;
    const work = join(w.dir, "work");
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work);
    const rounds: Round[] = [];
    try {
      for (let round = 1; round <= ctx.runs; round++) {
        log(`scale round ${round}/${ctx.runs}: copy floor (cp -a + sync)`);
        await timed(["sh", "-c", WARM_SH], { cwd: w.dir });
        const c = await timed(["sh", "-c", `cp -a tree work/copy && sync`], { cwd: w.dir });
        log(`scale round ${round}/${ctx.runs}: particle stage`);
        const sysroot = join(work, "sysroot");
        mkdirSync(sysroot);
        await sh(["sync"]);
        await timed(["sh", "-c", WARM_SH], { cwd: w.dir });
        const t = await timedRss([ctx.particle, "stage", `dir:${w.tree}`, "--sysroot", sysroot, "--json"]);
        await sh(["sync"]);
        const j = JSON.parse(t.stdout.trim().split("\n").filter((l) => l.startsWith("{")).at(-1)!) as { imageDigest: string };
        const imageBytes = statSync(imagePath(storeLayout(sysroot), j.imageDigest, "composefs")).size;
        rounds.push({ copyS: c.wallS, copyCpuS: c.userS + c.sysS, stageS: t.wallS, stageCpuS: t.userS + t.sysS, maxRssMB: (t.maxRssKB * 1024) / 1e6, imageBytes, imageDigest: j.imageDigest });
        // Untimed: the next round needs the room (and a fresh sysroot, or every object would exist).
        await sh(["rm", "-rf", join(work, "copy"), sysroot]);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    // The store section of this same run (it runs first and writes its JSON when it ends).
    const small = storeFigures(ctx.outDir);
    const med = (k: keyof Round) => median(rounds.map((r) => r[k] as number));
    const stageS = med("stageS"), copyS = med("copyS"), rss = med("maxRssMB");
    const perFile = stageS / m.counts.regularFiles;
    const smallPerFile = small ? small.stageS / small.files : null;
    // Decimal MB and KB, as the store section's peak (KiB-based figures before 2026-12-03).
    const growthKB = small?.maxRssMB != null ? ((rss - small.maxRssMB) * 1000) / (m.counts.regularFiles - small.files) : null;
    const targets: TargetResult[] = [];
    const tgt = (name: string, ratioLabel: string, r: number | null, cpuRatio: number | null | undefined, target: string, ok: (x: number) => boolean, note?: string) =>
      targets.push({ section: "scale", name, ratioLabel, ratio: r, cpuRatio, target, pass: r == null ? null : ok(r), note });
    tgt("time per file, 630k vs 63k files", "per-file time 630k / 63k", smallPerFile ? perFile / smallPerFile : null, undefined, "≤ 1.3×", (x) => x <= 1.3,
      small ? undefined : "run the store section first (same run)");
    tgt("metadata image vs mkfs.erofs (630k)", "particle / mkfs.erofs", rounds[0] ? rounds[0].imageBytes / m.reference.imageBytes : null, undefined, "≤ 1.1×", (x) => x <= 1.1);
    tgt("peak RSS growth per file", "KB per added file / 1 KB", growthKB, undefined, "≤ 1×", (x) => x <= 1,
      growthKB == null ? "needs the store section's peak" : `${rss.toFixed(0)} MB at ${fmtInt(m.counts.regularFiles)} files, ${small!.maxRssMB!.toFixed(0)} MB at ${fmtInt(small!.files)}`);
    tgt("first stage vs copy floor (630k)", "particle / (cp -a + sync)", stageS / copyS, med("stageCpuS") / med("copyCpuS"), "(info)", () => true);
    const lines = [
      `Workload: ${fmtInt(m.counts.regularFiles)} regular files (${fmtBytes(m.counts.regularBytes)}), ${fmtInt(m.counts.dirs)} dirs, ${fmtInt(m.counts.symlinks)} symlinks, ${fmtInt(m.counts.distinctDigests)} distinct contents; synthesized (test/bench/synth.ts), cached at ${w.dir}`,
      `Method:   median of ${rounds.length} rounds, copy floor and stage interleaved, tree read (untimed) before each; peak RSS from /usr/bin/time -v`,
      "",
      table([
        ["measure", "median", "runs (s)", "cpu", "notes"],
        ["copy floor: cp -a + sync", fmtS(copyS), rounds.map((r) => r.copyS.toFixed(1)).join(" "), fmtS(med("copyCpuS")), ""],
        ["particle stage (first)", fmtS(stageS), rounds.map((r) => r.stageS.toFixed(1)).join(" "), fmtS(med("stageCpuS")),
          `${(perFile * 1e6).toFixed(0)} µs/file${smallPerFile ? ` (63k tree: ${(smallPerFile * 1e6).toFixed(0)} µs/file)` : ""}; max RSS ${rss.toFixed(0)} MB`],
        ["metadata image", fmtBytes(rounds[0]?.imageBytes), "", "", `mkfs.erofs reference ${fmtBytes(m.reference.imageBytes)}`],
      ]),
      "",
      table([
        ["target", "ratio", "value", "target", "result", "cpu ratio (info)"],
        ...targets.map((t) => [t.name + (t.note ? ` (${t.note})` : ""), t.ratioLabel, fmtX(t.ratio), t.target, t.pass == null ? "n/a" : t.target === "(info)" ? "info" : t.pass ? "PASS" : "FAIL", t.cpuRatio == null ? "" : fmtX(t.cpuRatio)]),
      ]),
    ];
    const reproducible = rounds.every((r) => r.imageDigest === rounds[0]!.imageDigest);
    lines.push("", `check ${reproducible ? "ok  " : "FAIL"} the image is the same in every round: ${rounds.map((r) => r.imageDigest.slice(0, 12)).join(" ")}`);
    console.log(lines.join("\n"));
    return { name: "scale", targets, failed: !reproducible, data: { date: new Date().toISOString(), workload: m, rounds, small, targets } };
  },
};

export default scaleSection;
