// Run by particle-finalize.service when the system shuts down (ExecStop): the booted deployment's
// /etc changes, including those made after staging, are carried over to the staged one. Its
// stderr goes to the journal; a "<4>" prefix makes a line a warning there.
import { join } from "node:path";
import { readStatus } from "../deployments/read.ts";
import type { DeploymentStatus } from "../deployments/status.ts";
import { carryOverEtc } from "../deployments/etc-carry.ts";
import { withDeploymentMounted } from "../deployments/mounted.ts";
import { resolveWhere } from "../deployments/where.ts";
import { acquireLock } from "../store/lock.ts";
import { storeLayout } from "../store/layout.ts";
import { cleanTmp } from "../store/tmp.ts";
import { mkdtempSync, rmSync } from "node:fs";

const journal = !!process.env.JOURNAL_STREAM;
const say = (level: 4 | 6, m: string) => process.stderr.write(`${journal ? `<${level}>` : ""}particle finalize: ${m}\n`);

/**
 * Only an update receives the booted /etc: a rollback target keeps the /etc it had, as ostree does
 * (carrying the newer /etc back could hand an old image configuration it does not understand).
 */
export function isUpdate(booted: Pick<DeploymentStatus, "created">, staged: Pick<DeploymentStatus, "created">): boolean {
  return staged.created > booted.created;
}

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const w = resolveWhere(opts);
  const host = readStatus(w);
  const booted = host.status.booted;
  const staged = host.status.staged;
  if (!booted || !staged) {
    say(6, booted ? "nothing staged" : "not booted from a particle deployment; nothing to do");
    return;
  }
  if (!isUpdate(booted, staged)) {
    say(6, `deployment ${staged.id} is older than the booted ${booted.id} (a rollback): its /etc is left as it was`);
    return;
  }
  const l = storeLayout(w.sysroot);
  const lock = acquireLock(l.lock, "finalize", (m) => say(6, m));
  let mnt: string | undefined;
  try {
    cleanTmp(l);
    mnt = mkdtempSync(join(l.tmp, "finalize-"));
    const r = await withDeploymentMounted(w.sysroot, staged.id, mnt, (tree) => carryOverEtc(w.sysroot, booted.id, staged.id, join(tree, "etc"), "finalize"), (m) => say(4, m));
    say(6, `carried ${r.carried} local /etc changes from deployment ${booted.id} to ${staged.id}`);
    for (const c of r.conflicts) say(4, `/etc/${c.path}: local ${c.local} where deployment ${staged.id} has a ${c.image}; not carried over, saved as ${c.savedAs}`);
    if (opts.json) process.stdout.write(JSON.stringify(r) + "\n");
  } finally {
    if (mnt) rmSync(mnt, { recursive: true, force: true });
    lock.release();
  }
}
