import { promoteDeployment } from "../bootloader/promote.ts";
import { setNextEntry } from "../bootloader/grub-env.ts";
import { menuEntryId } from "../bootloader/grub-menu.ts";
import { readGrubEnv, usesGrub, writeGrubEnv } from "../bootloader/grub.ts";
import { UsageError } from "../cli.ts";
import { readStatus } from "../deployments/read.ts";
import { planRollback } from "../deployments/rollback.ts";
import { requireEsp, resolveWhere } from "../deployments/where.ts";
import { acquireLock } from "../store/lock.ts";
import { storeLayout } from "../store/layout.ts";
import { isSealedEsp } from "../seal/stage-sealed.ts";
import { promoteUki } from "../bootloader/promote-uki.ts";
import type { Host } from "../deployments/status.ts";

function sealedPromote(esp: string, host: Host, target: string): { file: string; generation: null } {
  const s = host.status;
  const d = [s.booted, s.staged, s.rollback, ...s.other].find((x) => x?.id === target);
  if (!d) throw new Error(`deployment ${target} not found`);
  return { file: promoteUki(esp, d.imageDigest).file, generation: null };
}

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const w = resolveWhere(opts);
  const esp = requireEsp(w);
  if (opts.once && !usesGrub(esp)) throw new UsageError(`--once: only for a GRUB ESP (next_entry in grub/particle.env); ${esp} has no GRUB menu of ours`);
  const lock = acquireLock(storeLayout(w.sysroot).lock, "rollback", (m) => process.stderr.write(`particle: ${m}\n`));
  try {
    const host = readStatus(w);
    const plan = planRollback(host);
    if (opts.once) {
      // The default (and its boot counting) stays; GRUB boots the target once and clears next_entry.
      const next = menuEntryId(plan.target);
      writeGrubEnv(esp, setNextEntry(readGrubEnv(esp), next));
      if (opts.json) process.stdout.write(JSON.stringify({ ...plan, once: true, nextEntry: next }) + "\n");
      else process.stderr.write(`particle: deployment ${plan.target} boots next, once (next_entry=${next}); the default stays ${plan.from ?? "-"}\n`);
      return;
    }
    // Sealed: the UKIs' order is signed; only their boot counters can move (seal/uki-order.ts).
    const r = isSealedEsp(esp) ? sealedPromote(esp, host, plan.target) : promoteDeployment(esp, plan.target);
    const what = plan.why === "unstage" ? `staged deployment ${plan.from} called off` : `rolled back from deployment ${plan.from ?? "-"}`;
    if (opts.json) process.stdout.write(JSON.stringify({ ...plan, entry: r.file, generation: r.generation }) + "\n");
    else process.stderr.write(`particle: ${what}; deployment ${plan.target} boots next (${r.file})\n`);
  } finally {
    lock.release();
  }
}
