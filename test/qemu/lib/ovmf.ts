// Booting a whole disk the way a PC does: OVMF (UEFI firmware) finds the ESP, runs systemd-boot,
// which reads the BLS entries `particle install`/`stage` wrote. The harness's agent still gets its
// script on /dev/vdb (qemu.ts); the disk under test is /dev/vda.
import { copyFileSync, existsSync } from "node:fs";
import { boot, run, type BootOptions, type BootResult } from "./qemu.ts";

export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/** The disk's own EFI variable store (`<disk>.vars.fd`): boot entries, systemd-boot's
 *  LoaderEntry* variables and set-default live there, so each disk keeps its own, as a machine does. */
export function varsFor(disk: string): string {
  const vars = `${disk}.vars.fd`;
  if (!existsSync(vars)) copyFileSync(OVMF_VARS, vars);
  return vars;
}

export function firmwareArgs(disk: string): string[] {
  return [
    "-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
    "-drive", `if=pflash,format=raw,unit=1,file=${varsFor(disk)}`,
  ];
}

export interface DiskBootOptions extends Omit<BootOptions, "kernel" | "initrd" | "append" | "disks" | "machineArgs"> {
  /** The installed disk (/dev/vda). */
  disk: string;
  /** More QEMU arguments after the firmware's, e.g. a NIC (apt-repo.ts guestNetArgs). */
  extraArgs?: string[];
}

function options(o: DiskBootOptions): BootOptions {
  return { ...o, disks: [o.disk], machineArgs: [...firmwareArgs(o.disk), ...(o.extraArgs ?? [])] };
}

/** One boot of `disk` through OVMF and its boot loader. */
export function bootDisk(o: DiskBootOptions): Promise<BootResult> {
  return boot(options(o));
}

/** Same, requiring the agent's script to succeed (the error carries the console tail). */
export function runDisk(o: DiskBootOptions & { script: string }): Promise<BootResult> {
  return run({ ...options(o), script: o.script });
}
