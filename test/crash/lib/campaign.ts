// One command's crash campaign: measure an uninterrupted run (its duration and the checkpoints it
// passes), then kill it again and again in fresh copies of the same world, at random moments
// within that duration (SIGKILL to its whole process group) and at its named checkpoints
// (PARTICLE_DIE_AT). After every kill the invariants are checked, the next command is run, and
// the invariants are checked again with tmp/ and the mount table.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PARTICLE } from "../../host/lib/particle.ts";
import { checkInvariants, defaultDeployment, release, type World } from "./invariants.ts";
import { sample } from "./prng.ts";

export interface CrashCase {
  name: string;
  /** The world every kill starts from (copied per kill; paths inside it are relative to its dir). */
  template: World;
  /** Arguments of the command under test, for a copy of the world. */
  command: (w: World) => string[];
  /** Arguments of the command run after the kill; it must succeed. */
  next: (w: World) => string[];
  /** Extra checks after the next command (install: the disk it wrote). */
  checkAfterNext?: (w: World) => string[];
  /** Checkpoints killed in every campaign, however small: where a bug was found (regressions). */
  always?: string[];
  /** Extra checks after the kill and after the next command, given the default from before. */
  check?: (w: World, previousDefault: string | undefined) => string[];
}

export interface CampaignStats {
  name: string;
  random: { tried: number; killed: number; finished: number };
  checkpoints: { tried: number; killed: number; steps: number };
  survived: number;
  failures: string[];
  seconds: number;
}

export interface CampaignOptions {
  kills: number;
  checkpoints: number | undefined;
  rand: () => number;
  log: (m: string) => void;
}

const relocate = (t: World, dir: string): World => ({
  dir,
  sysroot: t.sysroot.replace(t.dir, dir),
  ...(t.esp ? { esp: t.esp.replace(t.dir, dir) } : {}),
});

function copyWorld(t: World, dir: string): World {
  const r = spawnSync("cp", ["-a", "--reflink=auto", t.dir, dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`copying ${t.dir}: ${r.stderr}`);
  mkdirSync(join(dir, "tmp"), { recursive: true });
  return relocate(t, dir);
}

function envFor(w: World, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // The commands' own temp dirs (os.tmpdir()) go inside the world, where leftovers are seen.
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: join(w.dir, "tmp") };
  delete env.PARTICLE_DIE_AT;
  delete env.PARTICLE_DIE_TRACE;
  return { ...env, ...extra };
}

interface Run { code: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }

/** Runs particle in its own process group; after `killAfterMs` the whole group gets SIGKILL. */
function runParticle(args: string[], env: NodeJS.ProcessEnv, killAfterMs?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(PARTICLE, args, { detached: true, stdio: ["ignore", "ignore", "pipe"], env });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const killGroup = () => { try { process.kill(-child.pid!, "SIGKILL"); } catch { /* already gone */ } };
    const timer = killAfterMs === undefined ? undefined : setTimeout(killGroup, killAfterMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      // Whatever it started (skopeo, cp, sfdisk) dies with it, as at a power cut.
      killGroup();
      resolve({ code, signal, stderr, ms: performance.now() - t });
    });
  });
}

function finish(w: World): void {
  release(w.dir);
  rmSync(w.dir, { recursive: true, force: true });
}

export async function runCampaign(c: CrashCase, work: string, o: CampaignOptions): Promise<CampaignStats> {
  const t0 = performance.now();
  const stats: CampaignStats = {
    name: c.name, random: { tried: 0, killed: 0, finished: 0 }, checkpoints: { tried: 0, killed: 0, steps: 0 }, survived: 0, failures: [], seconds: 0,
  };
  // The uninterrupted run: its duration bounds the random moments, its trace lists the checkpoints.
  const m = copyWorld(c.template, join(work, `${c.name}-measure`));
  const traceFile = join(m.dir, "trace");
  const measured = await runParticle(c.command(m), envFor(m, { PARTICLE_DIE_TRACE: traceFile }));
  if (measured.code !== 0) throw new Error(`${c.name}: the uninterrupted run failed (exit ${measured.code}, ${measured.signal}):\n${measured.stderr}`);
  const clean = [...checkInvariants(m, { previousDefault: defaultDeployment(relocate(c.template, c.template.dir)), afterNext: true }), ...(c.checkAfterNext?.(m) ?? [])];
  if (clean.length) throw new Error(`${c.name}: invariants fail even without a kill:\n${clean.join("\n")}`);
  const trace = readFileSync(traceFile, "utf8").split("\n").filter(Boolean);
  finish(m);

  // Each step at its first, middle and last pass (a step passed once is killed once).
  const counts = new Map<string, number>();
  for (const s of trace) { const [step, n] = s.split("#"); counts.set(step!, Math.max(counts.get(step!) ?? 0, Number(n))); }
  const points = [...counts].flatMap(([step, n]) => [...new Set([1, Math.ceil(n / 2), n])].map((i) => `${step}#${i}`));
  stats.checkpoints.steps = counts.size;
  const always = (c.always ?? []).filter((p) => points.includes(p));
  if (always.length !== (c.always ?? []).length) throw new Error(`${c.name}: the command no longer passes checkpoint(s) ${(c.always ?? []).filter((p) => !points.includes(p)).join(", ")}`);
  const rest = points.filter((p) => !always.includes(p));
  const chosen = [...always, ...sample(rest, Math.max(0, (o.checkpoints ?? points.length) - always.length), o.rand)];
  o.log(`${c.name}: uninterrupted run ${(measured.ms / 1000).toFixed(2)} s, ${counts.size} checkpoint steps (${points.length} kill points, ${chosen.length} used), ${o.kills} random kills`);

  // A second uninterrupted run: the first pays for cold caches. Random moments are drawn within
  // the faster one, so that most of them land while the command still runs.
  const m2 = copyWorld(c.template, join(work, `${c.name}-measure-2`));
  const again = await runParticle(c.command(m2), envFor(m2));
  finish(m2);
  let span = Math.min(measured.ms, again.code === 0 ? again.ms : measured.ms);

  // Checkpoint kills first, then random kills until `kills` of them landed (or thrice as many tries).
  const plan = function* (): Generator<{ what: string; delay?: number; dieAt?: string }> {
    for (const p of chosen) yield { what: `at checkpoint ${p}`, dieAt: p };
    while (stats.random.killed < o.kills && stats.random.tried < 3 * o.kills) {
      const delay = Math.floor(o.rand() * span);
      yield { what: `after ${delay} ms`, delay };
    }
  };
  const phase: Record<string, number> = {};
  let tp = performance.now();
  const lap = (name: string) => { const now = performance.now(); phase[name] = (phase[name] ?? 0) + (now - tp) / 1000; tp = now; };
  let i = 0;
  for (const k of plan()) {
    i++;
    tp = performance.now();
    const w = copyWorld(c.template, join(work, `${c.name}-${i}`));
    lap("copy");
    const label = `${c.name} kill ${i} ${k.what}`;
    try {
      const before = defaultDeployment(w);
      const r = await runParticle(c.command(w), envFor(w, k.dieAt ? { PARTICLE_DIE_AT: k.dieAt } : {}), k.delay);
      lap("command");
      const killed = r.signal === "SIGKILL";
      if (k.dieAt) { stats.checkpoints.tried++; if (killed) stats.checkpoints.killed++; }
      else {
        stats.random.tried++;
        if (killed) stats.random.killed++;
        else {
          stats.random.finished++;
          // Faster than measured (warm caches): later moments are drawn within this run's time.
          if (r.code === 0) span = Math.min(span, r.ms);
        }
      }
      if (!killed && r.code !== 0) { stats.failures.push(`${label}: exited ${r.code} without a kill:\n${r.stderr}`); continue; }
      if (k.dieAt && !killed) { stats.failures.push(`${label}: never reached the checkpoint`); continue; }
      const afterKill = [...checkInvariants(w, { previousDefault: before, afterNext: false }), ...(c.check?.(w, before) ?? [])];
      lap("check");
      const n = await runParticle(c.next(w), envFor(w));
      lap("next");
      const afterNext = n.code === 0
        ? [...checkInvariants(w, { previousDefault: before, afterNext: true }), ...(c.check?.(w, before) ?? []), ...(c.checkAfterNext?.(w) ?? [])]
        : [`the next command (${c.next(w).join(" ")}) exited ${n.code}: ${n.stderr.trim().split("\n").slice(-3).join(" | ")}`];
      const problems = [...afterKill.map((p) => `after the kill: ${p}`), ...afterNext.map((p) => `after the next command: ${p}`)];
      lap("check");
      if (problems.length) stats.failures.push(`${label}:\n  ${problems.join("\n  ")}`);
      else if (killed) stats.survived++;
    } finally {
      finish(w);
      lap("cleanup");
    }
  }
  o.log(`${c.name}: time per phase (s): ${Object.entries(phase).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}`);
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}
