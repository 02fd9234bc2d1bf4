// `particle health`, run by particle-health.service before boot-complete.target: runs the
// executables of /usr/lib/particle/health.d and /etc/particle/health.d (health/plan.ts says which
// and in what order). Any failure is a non-zero exit, so the service fails, boot-complete.target
// is never reached and neither systemd-bless-boot nor particle-bless marks the deployment good: it
// runs out of tries and the boot loader falls back to the previous one. Each check's output goes
// to the journal, prefixed with its name.
import { join } from "node:path";
import { HEALTH_DIRS, planHealth, summarize, passed, type CheckOutcome } from "../health/plan.ts";
import { listHealthDir, runCheck } from "../health/run.ts";

const journal = !!process.env.JOURNAL_STREAM;
// "<3>" makes a line an error in the journal, "<4>" a warning (sd-daemon(3) prefixes).
const say = (level: 3 | 4 | 6, m: string) => process.stderr.write(`${journal ? `<${level}>` : ""}particle health: ${m}\n`);

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const root = String(opts.root ?? "/");
  const plan = planHealth(HEALTH_DIRS.map((d) => listHealthDir(join(root, d))));
  for (const s of plan.skipped) say(4, `skipping ${s.path}: ${s.reason}`);
  if (plan.checks.length === 0) say(6, `no checks in ${HEALTH_DIRS.map((d) => join(root, d)).join(" or ")}`);
  const outcomes: CheckOutcome[] = [];
  for (const c of plan.checks) {
    const o = await runCheck(c);
    outcomes.push(o);
    const ok = passed(o);
    for (const line of o.output.split("\n").filter((l) => l.length > 0)) say(ok ? 6 : 3, `${c.name}: ${line}`);
  }
  const { ok, lines } = summarize(outcomes);
  for (const [i, l] of lines.entries()) say(passed(outcomes[i]!) ? 6 : 3, l);
  if (opts.json) process.stdout.write(JSON.stringify({ ok, checks: outcomes, skipped: plan.skipped }) + "\n");
  if (!ok) {
    const failed = outcomes.filter((o) => !passed(o)).map((o) => o.name);
    throw new Error(`health check${failed.length > 1 ? "s" : ""} failed: ${failed.join(", ")} (the deployment will not be marked good)`);
  }
}
