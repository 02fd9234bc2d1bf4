// `make bench`: runs the benchmark sections in order and prints a summary of their targets.
// A benchmark, not a test: missing a target is reported (and exits 0 unless BENCH_STRICT=1);
// a section that breaks (a command fails, a sanity check does not hold) exits 1.
//
//   bun test/bench/run.ts [section…] [--runs N] [--particle PATH] [--keep] [--rebuild]
//
// Sections are modules next to this file named in SECTIONS, each exporting a BenchSection as its
// default export; a section whose file does not exist yet is skipped (so `boot` can land later,
// e.g. as test/bench/boot.ts driving test/qemu/lib). Each writes dist/bench/<name>.json.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fmtX, REPO, table, writeJson, type BenchContext, type BenchSection, type SectionResult, type TargetResult } from "./lib.ts";

const SECTIONS = ["store", "scale", "boot", "oci", "delivery", "fleet"] as const;

function parseArgs(argv: string[]): { ctx: BenchContext; only: string[] } {
  const ctx: BenchContext = {
    runs: Number(process.env.BENCH_RUNS ?? 3),
    particle: join(REPO, "dist", "particle"),
    keep: false,
    rebuild: false,
    outDir: join(REPO, "dist", "bench"),
  };
  const only: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => { const v = argv[++i]; if (v === undefined) throw new Error(`${a} needs a value`); return v; };
    if (a === "--runs") ctx.runs = Number(val());
    else if (a === "--particle") ctx.particle = val();
    else if (a === "--keep") ctx.keep = true;
    else if (a === "--rebuild") ctx.rebuild = true;
    else if (a === "-h" || a === "--help") {
      console.log("usage: bun test/bench/run.ts [section…] [--runs N] [--particle PATH] [--keep] [--rebuild]\n" +
        `sections: ${SECTIONS.join(", ")}; env: PARTICLE_CACHE, BENCH_RUNS, BENCH_OSTREE_RUNS, BENCH_STRICT=1`);
      process.exit(0);
    } else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else only.push(a);
  }
  if (!Number.isInteger(ctx.runs) || ctx.runs < 1) throw new Error("--runs must be a positive integer");
  for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`unknown section ${s} (have: ${SECTIONS.join(", ")})`);
  return { ctx, only };
}

async function main(): Promise<number> {
  const { ctx, only } = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) console.warn("bench: not root; the store section needs root (trusted.* xattrs, ownership)");
  const results: SectionResult[] = [];
  let broken = false;
  for (const name of SECTIONS) {
    if (only.length && !only.includes(name)) continue;
    const file = join(import.meta.dir, `${name}.ts`);
    if (!existsSync(file)) { if (only.includes(name)) console.log(`bench: section ${name} does not exist yet`); continue; }
    const section = (await import(file)).default as BenchSection;
    console.log(`\n== ${section.title} ==\n`);
    const t0 = performance.now();
    try {
      const r = await section.run(ctx);
      results.push(r);
      broken ||= r.failed;
      writeJson(join(ctx.outDir, `${r.name}.json`), r.data);
      console.log(`\n(${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s; results in ${join(ctx.outDir, `${r.name}.json`)})`);
    } catch (e) {
      broken = true;
      console.error(`bench: section ${name} failed: ${e instanceof Error ? e.stack ?? e.message : e}`);
    }
  }
  const all: TargetResult[] = results.flatMap((r) => r.targets);
  if (all.length) {
    console.log("\n== Summary ==\n");
    console.log(table([
      ["section", "target", "ratio", "target", "result"],
      ...all.map((t) => [t.section, t.name, fmtX(t.ratio), t.target, t.pass == null ? "n/a" : t.pass ? "PASS" : "FAIL"]),
    ]));
  }
  const missed = all.some((t) => t.pass !== true);
  if (broken) return 1;
  return missed && process.env.BENCH_STRICT === "1" ? 1 : 0;
}

process.exitCode = await main().catch((e) => { console.error(`bench: ${e instanceof Error ? e.message : e}`); return 2; });
