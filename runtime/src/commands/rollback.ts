import { promoteDeployment } from "../bootloader/promote.ts";
import { readStatus } from "../deployments/read.ts";
import { planRollback } from "../deployments/rollback.ts";
import { requireEsp, resolveWhere } from "../deployments/where.ts";
import { acquireLock } from "../store/lock.ts";
import { storeLayout } from "../store/layout.ts";

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const w = resolveWhere(opts);
  const esp = requireEsp(w);
  const lock = acquireLock(storeLayout(w.sysroot).lock, "rollback", (m) => process.stderr.write(`particle: ${m}\n`));
  try {
    const plan = planRollback(readStatus(w));
    const r = promoteDeployment(esp, plan.target);
    const what = plan.why === "unstage" ? `staged deployment ${plan.from} called off` : `rolled back from deployment ${plan.from ?? "-"}`;
    if (opts.json) process.stdout.write(JSON.stringify({ ...plan, entry: r.file, generation: r.generation }) + "\n");
    else process.stderr.write(`particle: ${what}; deployment ${plan.target} boots next (${r.file})\n`);
  } finally {
    lock.release();
  }
}
