// `particle bless`, run by particle-bless.service once boot-complete.target is reached: on a GRUB
// ESP, marks the booted deployment good in grubenv (boot_success=1, boot_counter dropped), which
// ends boot counting for it. On a systemd-boot ESP systemd-bless-boot does this; nothing to do here.
// Nor without an ESP (a direct kernel boot, or the ESP not mounted): no boot loader counts tries,
// so there is nothing to mark, and failing would only leave a healthy system "degraded".
import { planBless } from "../bootloader/grub-env.ts";
import { readGrubEnv, usesGrub, writeGrubEnv } from "../bootloader/grub.ts";
import { resolveWhere } from "../deployments/where.ts";

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const w = resolveWhere(opts);
  const log = (m: string) => process.stderr.write(`particle: ${m}\n`);
  const esp = w.esp;
  if (!esp) {
    log("no ESP found (looked for loader/ under /efi, /boot/efi, /boot): no boot counting to end; nothing to do");
    if (opts.json) process.stdout.write(JSON.stringify({ grub: false, changed: false }) + "\n");
    return;
  }
  if (!usesGrub(esp)) {
    log(`${esp} has no GRUB menu of ours: systemd-bless-boot counts systemd-boot's tries; nothing to do`);
    if (opts.json) process.stdout.write(JSON.stringify({ grub: false, changed: false }) + "\n");
    return;
  }
  const plan = planBless(readGrubEnv(esp), w.bootedId);
  if (plan.changed) writeGrubEnv(esp, plan.env);
  log(plan.message);
  if (opts.json) process.stdout.write(JSON.stringify({ grub: true, changed: plan.changed, env: Object.fromEntries(plan.env) }) + "\n");
}
