// Shared helpers for `make bench` sections: timing external commands, the cache directory,
// formatting, and writing results. Sections stay small and comparable because they all time
// and print the same way.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

/** Repository root (test/bench/ is two levels below it). */
export const REPO = resolve(import.meta.dir, "../..");

/** `${PARTICLE_CACHE:-~/.cache/particle-os}/bench`: workloads are built once and reused here. */
export function benchCacheDir(): string {
  const base = process.env.PARTICLE_CACHE || join(homedir(), ".cache", "particle-os");
  // Made here: a section run alone on a new machine (`run.ts scale`) listed it before anything had.
  const dir = join(base, "bench");
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface BenchContext {
  /** Repetitions per measurement (median reported). */
  runs: number;
  /** The particle binary under test. */
  particle: string;
  /** Keep work directories (sysroots, repos) after the run, for inspection. */
  keep: boolean;
  /** Rebuild cached workloads even if present. */
  rebuild: boolean;
  /** Where result JSON goes (dist/bench/). */
  outDir: string;
}

/** A pass/fail line a section hands back to run.ts for the summary. */
export interface TargetResult {
  section: string;
  name: string;
  /** e.g. "ostree / particle"; how the ratio was formed. */
  ratioLabel: string;
  ratio: number | null;
  /** The same ratio formed from CPU time (user+sys) instead of wall time, where that means something:
   *  informational, steadier than wall time on a shared machine. */
  cpuRatio?: number | null;
  /** e.g. "≥ 2.5×". */
  target: string;
  pass: boolean | null; // null: could not be measured
  note?: string;
}

export interface SectionResult {
  name: string;
  targets: TargetResult[];
  /** Something broke (a command failed, a sanity check did not hold): not the same as missing a target. */
  failed: boolean;
  /** Free-form, written to dist/bench/<name>.json. */
  data: unknown;
}

export interface BenchSection {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<SectionResult>;
}

export interface Timing {
  wallS: number;
  userS: number;
  sysS: number;
  /** Share of the wall time in which some task on the host waited for a CPU / for IO (Linux PSI "some"). */
  cpuStall: number;
  ioStall: number;
  stdout: string;
  stderr: string;
}

export class BenchError extends Error {}

/** Cumulative PSI "some" stall time in µs, or NaN where /proc/pressure is missing. */
function psiTotal(res: "cpu" | "io"): number {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync(`/proc/pressure/${res}`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Runs a command to completion and times it. Wall time is measured around spawn..exit in this
 * process; CPU time is the child's rusage, which on Linux includes its reaped descendants (so a
 * `sh -c "find | xargs -P2 …"` pipeline reports the CPU of all of its workers).
 */
export async function timed(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Timing> {
  const cpu0 = psiTotal("cpu"), io0 = psiTotal("io");
  const t0 = performance.now();
  const p = Bun.spawn(cmd, {
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  const wallS = (performance.now() - t0) / 1000;
  const cpuStall = (psiTotal("cpu") - cpu0) / 1e6 / wallS;
  const ioStall = (psiTotal("io") - io0) / 1e6 / wallS;
  if (code !== 0) {
    const tail = stderr.trim().split("\n").slice(-15).join("\n");
    throw new BenchError(`${cmd.join(" ")} exited with ${code}${tail ? `\n${tail}` : ""}`);
  }
  const ru = p.resourceUsage();
  const userS = ru ? Number(ru.cpuTime.user) / 1e6 : NaN;
  const sysS = ru ? Number(ru.cpuTime.system) / 1e6 : NaN;
  return { wallS, userS, sysS, cpuStall, ioStall, stdout, stderr };
}

/** Runs a command for its effect (untimed set-up); throws with its stderr on failure. */
export async function sh(cmd: string[], opts: { cwd?: string } = {}): Promise<string> {
  return (await timed(cmd, opts)).stdout;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const fmtS = (s: number | null | undefined): string => (s == null || !Number.isFinite(s) ? "n/a" : s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`);
export const fmtX = (x: number | null | undefined): string => (x == null || !Number.isFinite(x) ? "n/a" : x < 10 ? `${x.toFixed(2)}×` : `${x.toFixed(1)}×`);
export const fmtBytes = (b: number | null | undefined): string => {
  if (b == null || !Number.isFinite(b)) return "n/a";
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)} kB`;
  return `${b} B`;
};
export const fmtInt = (n: number): string => n.toLocaleString("en-US");

/** A plain aligned text table (first row is the header). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  const line = (r: string[]) => r.map((c, i) => c + " ".repeat(widths[i]! - [...c].length)).join("  ").trimEnd();
  const out = [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  ")];
  for (const r of rows.slice(1)) out.push(line(r));
  return out.join("\n");
}

export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(value, null, 2) + "\n");
}

export const log = (msg: string): void => {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${t}] ${msg}\n`);
};

/** A timing with the command's peak memory, read from `/usr/bin/time -v` around it. */
export interface RssTiming extends Timing {
  maxRssKB: number;
}

/**
 * Like `timed`, under `/usr/bin/time -v`: its "Maximum resident set size" is the command's peak RSS.
 * The report goes to a file (-o): a Bun child leaves the shared stderr pipe non-blocking, and
 * time(1) writing its report there after the child exits then failed with EAGAIN (exit status 1).
 */
export async function timedRss(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<RssTiming> {
  const report = join(tmpdir(), `bench-time-${process.pid}-${Date.now()}.txt`);
  try {
    const t = await timed(["/usr/bin/time", "-v", "-o", report, ...cmd], opts);
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(report, "utf8"));
    if (!m) throw new BenchError(`/usr/bin/time -v printed no maximum RSS for ${cmd.join(" ")}`);
    return { ...t, maxRssKB: Number(m[1]) };
  } finally {
    rmSync(report, { force: true });
  }
}
