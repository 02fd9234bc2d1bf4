// What `particle rollback` changes: with a staged deployment, the booted one becomes the default
// again (the update is called off); otherwise the rollback deployment becomes the default. Either
// way it is one entry rewritten with a new generation, so the switch is one rename on the ESP.
import type { Host } from "./status.ts";

export interface RollbackPlan {
  /** Deployment that becomes the default. */
  target: string;
  /** The deployment that was the default. */
  from: string | null;
  why: "unstage" | "rollback";
}

export function planRollback(host: Host): RollbackPlan {
  const s = host.status;
  if (s.staged && s.booted) {
    if (!s.booted.bootEntry) throw new Error(`cannot roll back: booted deployment ${s.booted.id} has no boot entry`);
    return { target: s.booted.id, from: s.staged.id, why: "unstage" };
  }
  if (!s.rollback) throw new Error("cannot roll back: there is no other deployment with a boot entry (see particle status)");
  if (!s.rollback.bootEntry) throw new Error(`cannot roll back: deployment ${s.rollback.id} has no boot entry`);
  return { target: s.rollback.id, from: host.spec.defaultDeployment, why: "rollback" };
}
