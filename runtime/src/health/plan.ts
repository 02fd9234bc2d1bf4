// Which health checks run, in what order, from the listings of the health.d directories. Pure: the
// runner (run.ts) reads the directories and runs what this returns.
//
// The rules are systemd's for drop-in directories (and greenboot's for its check directories):
// - checks run in the lexical order of their file names, whichever directory holds them;
// - a file in a later directory (/etc) replaces the file of the same name in an earlier one
//   (/usr/lib): the vendor ships a check, the administrator overrides it by name;
// - a later file that is empty or a symlink to /dev/null masks the name: nothing of that name runs;
// - files that are not executable, hidden files and package-manager leftovers are not checks
//   (they are reported as skipped, so a check that lost its x bit does not vanish without a word).
import { z } from "zod";

/** Vendor checks first, then the administrator's, which win by name. */
export const HEALTH_DIRS = ["/usr/lib/particle/health.d", "/etc/particle/health.d"] as const;

export const HealthFile = z.object({
  name: z.string().min(1),
  /** Regular file (or symlink to one) with an execute bit. */
  executable: z.boolean(),
  /** Empty, or a symlink to /dev/null. */
  masked: z.boolean(),
  /** A directory, socket, dangling symlink…: never a check. */
  regular: z.boolean(),
});
export type HealthFile = z.infer<typeof HealthFile>;

export const HealthListing = z.object({ dir: z.string().min(1), files: z.array(HealthFile) });
export type HealthListing = z.infer<typeof HealthListing>;

export const PlannedCheck = z.object({ name: z.string(), path: z.string() });
export type PlannedCheck = z.infer<typeof PlannedCheck>;

export const SkippedFile = z.object({ name: z.string(), path: z.string(), reason: z.string() });
export type SkippedFile = z.infer<typeof SkippedFile>;

export const HealthPlan = z.object({ checks: z.array(PlannedCheck), skipped: z.array(SkippedFile) });
export type HealthPlan = z.infer<typeof HealthPlan>;

/** Names that are never checks: hidden files, editor backups, dpkg/rpm leftovers. */
export function ignoredName(name: string): boolean {
  return name.startsWith(".") || name.endsWith("~") || /\.(dpkg-[a-z]+|rpm(new|save|orig)|ucf-[a-z]+)$/.test(name);
}

/** `listings` in precedence order, lowest first (HEALTH_DIRS' order). */
export function planHealth(listings: readonly HealthListing[]): HealthPlan {
  const winner = new Map<string, { dir: string; file: HealthFile }>();
  for (const l of listings) {
    for (const f of l.files) {
      if (ignoredName(f.name) || f.name.includes("/")) continue;
      winner.set(f.name, { dir: l.dir, file: f });
    }
  }
  const plan: HealthPlan = { checks: [], skipped: [] };
  const names = [...winner.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const { dir, file } = winner.get(name)!;
    const path = `${dir}/${name}`;
    if (file.masked) plan.skipped.push({ name, path, reason: "masked (empty or a symlink to /dev/null)" });
    else if (!file.regular) plan.skipped.push({ name, path, reason: "not a regular file" });
    else if (!file.executable) plan.skipped.push({ name, path, reason: "not executable" });
    else plan.checks.push({ name, path });
  }
  return plan;
}

export interface CheckOutcome {
  name: string;
  path: string;
  /** Exit status; null when killed (signal or timeout). */
  exitCode: number | null;
  /** Why it did not exit 0 on its own, e.g. "timed out after 300 s" or "killed by SIGSEGV". */
  error?: string;
  output: string;
}

export const passed = (o: CheckOutcome): boolean => o.exitCode === 0 && !o.error;

/** One line per check for the journal and the exit message. */
export function summarize(outcomes: readonly CheckOutcome[]): { ok: boolean; lines: string[] } {
  const lines = outcomes.map((o) => passed(o) ? `check ${o.name}: passed` :
    `check ${o.name} (${o.path}) FAILED: ${o.error ?? `exit status ${o.exitCode}`}`);
  return { ok: outcomes.every(passed), lines };
}
