// `particle doctor` for people: the kernel's support first (what a helper asks first), then every
// finding with what to do.
import type { DoctorReport } from "./schema.ts";

const MARK = { ok: "ok  ", info: "info", warning: "WARN", error: "FAIL" } as const;

export function renderDoctor(r: DoctorReport): string {
  const c = r.kernel.capabilities;
  const cap = (name: string, x: { support: string; why: string }) => `  ${name.padEnd(28)} ${x.support.padEnd(8)} ${x.why}`;
  const lines = [
    `kernel ${c.release}`,
    cap("EROFS", c.erofs),
    cap("file-backed EROFS mounts", c.erofsFileBacked),
    cap("loop devices", c.loop),
    cap("overlayfs data-only lowers", c.overlayDataOnly),
    cap("overlayfs verity=", c.overlayVerity),
    cap("squashfs", c.squashfs),
    cap("fs-verity (kernel)", c.fsVerity),
    cap("fs-verity (store)", r.kernel.storeFsVerity),
    `formats: ${r.kernel.formats.map((v) => `${v.format} ${v.boots ? "boots" : "cannot boot"}`).join(", ")}`,
    `booted deployment: ${r.booted ?? "none (not booted from particle)"}`,
    `last upgrade check: ${r.upgradeCheck ? `${r.upgradeCheck.at} (${r.upgradeCheck.result})` : "never"}`,
    "",
  ];
  for (const f of r.findings) {
    lines.push(`[${MARK[f.severity]}] ${f.check}: ${f.message}`);
    if (f.action) lines.push(`       what to do: ${f.action}`);
  }
  return lines.join("\n") + "\n";
}
