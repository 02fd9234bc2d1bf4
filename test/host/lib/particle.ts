// Runs the compiled binaries the way a user does, so host tests exercise exactly what ships.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";

export const PARTICLE = resolve(__dirname, "../../../dist/particle");
export const PARTICLE_BOOT = resolve(__dirname, "../../../dist/particle-boot");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function particle(args: string[], opts: { env?: Record<string, string>; argv0?: string; wrap?: string[] } = {}): RunResult {
  const cmd = opts.wrap ? opts.wrap[0]! : PARTICLE;
  const full = opts.wrap ? [...opts.wrap.slice(1), PARTICLE, ...args] : args;
  const r = spawnSync(cmd, full, { encoding: "utf8", env: { ...process.env, ...opts.env }, argv0: opts.argv0, maxBuffer: 1 << 26 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs particle and fails with its stderr if it exits non-zero. */
export function particleOk(args: string[]): string {
  const r = particle(args);
  if (r.code !== 0) throw new Error(`particle ${args.join(" ")} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

export function stageJson(source: string, sysroot: string, extra: string[] = []): Record<string, any> {
  return JSON.parse(particleOk(["stage", source, "--sysroot", sysroot, "--json", ...extra]));
}

/** The mounts a test file made, so its afterAll can undo what a failing test left mounted. */
export class Mounts {
  /** Live mount points, oldest first (tests may push their own, e.g. a loop filesystem). */
  readonly live: string[] = [];
  constructor(private readonly sysroot: string) {}

  /** `particle mount` of deployment `id` (of `root`, default the file's sysroot) on `target`. */
  mount = (id: string, target: string, root = this.sysroot): void => {
    mkdirSync(target, { recursive: true });
    particleOk(["mount", id, target, "--sysroot", root]);
    this.live.push(target);
  };

  unmount = (target: string): void => {
    particleOk(["unmount", target]);
    this.live.splice(this.live.indexOf(target), 1);
  };
}

/**
 * `particle` without blocking the test's event loop: for tests whose servers run in the test
 * process itself (test/host/lib/counting-proxy.ts), which spawnSync would starve.
 */
export function particleAsync(args: string[], opts: { env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(PARTICLE, args, { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    p.stdout.on("data", (c: Buffer) => { stdout += c; });
    p.stderr.on("data", (c: Buffer) => { stderr += c; });
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
