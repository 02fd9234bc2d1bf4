// Pure: the findings of `particle doctor` from the facts gather.ts read. Every finding carries what
// to do about it; a check that found nothing wrong says so with severity "ok", so a report always
// shows what was looked at.
import { formatVerdicts, kernelCapabilities } from "../kernel/capabilities.ts";
import { mib } from "../deployments/space.ts";
import type { DoctorFacts } from "./facts.ts";
import { DOCTOR_API_VERSION, DoctorReport, type Finding } from "./schema.ts";

/** Below this much free space on the store a full image (erofs/squashfs) or a big update will not fit. */
export const STORE_LOW_BYTES = 1024 ** 3;
/** …or below this share of the filesystem. */
export const STORE_LOW_SHARE = 0.05;

const f = (check: string, severity: Finding["severity"], message: string, action: string | null = null): Finding => ({ check, severity, message, action });

export function diagnose(facts: DoctorFacts): DoctorReport {
  const caps = kernelCapabilities(facts.kernel);
  const formats = formatVerdicts(caps);
  const findings: Finding[] = [
    ...kernelFindings(facts, formats),
    ...spaceFindings(facts),
    ...entryFindings(facts),
    ...verifyFindings(facts),
    ...bootCountFindings(facts),
    ...finalizeFindings(facts),
    ...upgradeCheckFindings(facts),
  ];
  const uc = facts.upgradeCheck;
  return DoctorReport.parse({
    apiVersion: DOCTOR_API_VERSION,
    kind: "Doctor",
    kernel: { capabilities: caps, formats, storeFsVerity: facts.storeFsVerity },
    store: facts.store,
    esp: facts.esp,
    booted: facts.bootedId ?? null,
    upgradeCheck: uc && !("unreadable" in uc) ? uc : null,
    findings,
  });
}

function kernelFindings(facts: DoctorFacts, formats: ReturnType<typeof formatVerdicts>): Finding[] {
  const boots = formats.filter((v) => v.boots).map((v) => v.format);
  const not = formats.filter((v) => !v.boots).map((v) => `${v.format} (${v.why})`);
  const out: Finding[] = [];
  const k = facts.kernel.release;
  if (!boots.length) {
    out.push(f("kernel-formats", "error", `kernel ${k} can boot none of particle's formats: ${not.join("; ")}`, "boot a kernel with EROFS (CONFIG_EROFS_FS) or squashfs (CONFIG_SQUASHFS, CONFIG_SQUASHFS_ZSTD) and loop devices"));
  } else {
    out.push(f("kernel-formats", not.length ? "info" : "ok", `kernel ${k} can boot ${boots.join(", ")}${not.length ? `; not ${not.join("; ")}` : ""}`,
      not.length ? "nothing, unless you want those: `particle stage` picks the newest format the deployment's own kernel boots" : null));
  }
  const v = facts.storeFsVerity;
  if (v.support === "no") {
    out.push(f("store-fs-verity", "warning", `the store's filesystem has no fs-verity (${v.why}): the kernel cannot check images and objects as they are read`,
      "put the store on ext4 with the verity feature (tune2fs -O verity DEVICE, unmounted) or boot with particle.verity=optional knowingly; `particle verify` checks the digests by reading everything"));
  } else {
    out.push(f("store-fs-verity", v.support === "yes" ? "ok" : "info", `fs-verity on the store: ${v.support} (${v.why})`, v.support === "yes" ? null : "the first boot of a deployment seals its files; run `particle doctor` again after it"));
  }
  return out;
}

function spaceFindings(facts: DoctorFacts): Finding[] {
  const out: Finding[] = [];
  const s = facts.store;
  if (s.freeBytes === null || s.totalBytes === null) {
    out.push(f("store-space", "error", `no store at ${s.path} (the sysroot holds no particle/)`, "pass --sysroot DIR (the root holding particle/); on a booted system it is /sysroot"));
  } else if (s.freeBytes < STORE_LOW_BYTES || s.freeBytes < s.totalBytes * STORE_LOW_SHARE) {
    out.push(f("store-space", "warning", `the store's filesystem (${s.path}) has ${mib(s.freeBytes)} free of ${mib(s.totalBytes)}`, "`particle cleanup` removes deployments other than booted, staged and one rollback; a full image (erofs, squashfs) needs the whole tree's size free"));
  } else {
    out.push(f("store-space", "ok", `the store's filesystem (${s.path}) has ${mib(s.freeBytes)} free of ${mib(s.totalBytes)}`));
  }
  const e = facts.esp;
  if (e.path === null || e.freeBytes === null || e.totalBytes === null) {
    out.push(f("esp-space", "info", "no ESP found (looked for loader/ under /efi, /boot/efi, /boot)", "pass --esp DIR if the ESP is mounted elsewhere; without one, staged deployments get no boot entry"));
  } else if (e.freeBytes < facts.espLargestBootPair) {
    out.push(f("esp-space", "warning", `the ESP (${e.path}) has ${mib(e.freeBytes)} free, less than the largest kernel and initramfs on it (${mib(facts.espLargestBootPair)}): a deployment with a new kernel will not fit`, "`particle cleanup` removes the kernels only old deployments use"));
  } else {
    out.push(f("esp-space", "ok", `the ESP (${e.path}) has ${mib(e.freeBytes)} free of ${mib(e.totalBytes)}`));
  }
  return out;
}

function entryFindings(facts: DoctorFacts): Finding[] {
  const out: Finding[] = [];
  const ids = new Set(facts.deployments.map((d) => d.id));
  for (const e of facts.entries) {
    if (!ids.has(e.deployId)) {
      out.push(f("entry-without-deployment", "error", `boot entry ${e.file} boots deployment ${e.deployId}, which is not in the store: that entry fails in the initramfs`,
        `delete ${facts.esp.path ?? "<esp>"}/loader/entries/${e.file}, or \`particle cleanup\``));
    }
  }
  if (facts.esp.path === null) return out;
  const withEntry = new Set(facts.entries.map((e) => e.deployId));
  // The base of a layered deployment has no entry of its own on purpose (particle layer, upgrade).
  const bases = new Set(facts.deployments.flatMap((d) => (d.baseId ? [d.baseId] : [])));
  for (const d of facts.deployments) {
    if (withEntry.has(d.id) || bases.has(d.id)) continue;
    out.push(f("deployment-without-entry", d.id === facts.bootedId ? "warning" : "info",
      `deployment ${d.id}${d.id === facts.bootedId ? " (booted)" : ""} has no boot entry: no boot can start it`,
      d.id === facts.bootedId ? "`particle rollback` or stage again before the next reboot; this deployment cannot be booted again" : "`particle cleanup` removes it (and what only it uses)"));
  }
  if (!out.length) out.push(f("entries", "ok", `${facts.entries.length} boot entries, ${facts.deployments.length} deployments: every entry has its deployment and every deployment an entry`));
  return out;
}

function verifyFindings(facts: DoctorFacts): Finding[] {
  const v = facts.verify;
  if (v.problems.length) {
    return v.problems.map((p) => f("quick-verify", "error", `${p.what}: ${p.problem}`,
      "run `particle verify` for a full check; a deployment with a damaged image or missing objects must be staged again (and `particle cleanup` run)"));
  }
  const skipped = v.imagesSkipped ? `; ${v.imagesSkipped} large unsealed images not re-read` : "";
  return [f("quick-verify", "ok", `${v.imagesChecked} images checked, ${v.objectsChecked} objects present${skipped}`, v.imagesSkipped ? "`particle verify` re-reads everything" : null)];
}

function bootCountFindings(facts: DoctorFacts): Finding[] {
  const out: Finding[] = [];
  for (const e of facts.entries) {
    if (e.triesLeft === 0) {
      out.push(f("boot-counting", "warning", `boot entry ${e.file} (deployment ${e.deployId}) ran out of tries: it failed to boot ${e.triesDone ?? "several"} times and the boot loader skips it`,
        `see why in the journal of those boots (journalctl --list-boots); \`particle cleanup\` removes it, staging again gives a fresh entry`));
    }
  }
  const booted = facts.entries.find((e) => e.deployId === facts.bootedId);
  if (booted && booted.triesLeft !== undefined && booted.triesLeft > 0) {
    out.push(f("boot-counting", "info", `the booted deployment's entry ${booted.file} is still counting tries (${booted.triesLeft} left): this boot was not blessed yet`,
      "it is once boot-complete.target is reached; if it stays, see `systemctl status systemd-bless-boot.service` and the health checks"));
  }
  if (!out.length) out.push(f("boot-counting", "ok", `no entry ran out of tries${booted ? "; the booted entry is blessed" : ""}`));
  return out;
}

function finalizeFindings(facts: DoctorFacts): Finding[] {
  const booted = facts.deployments.find((d) => d.id === facts.bootedId);
  const next = facts.deployments.find((d) => d.id === facts.defaultId);
  if (!booted || !next || next.id === booted.id || next.created <= booted.created) {
    return [f("finalize", "ok", "no staged update waits for finalize")];
  }
  if (next.carryOver?.phase === "finalize" && next.carryOver.from === booted.id) {
    return [f("finalize", "ok", `deployment ${next.id} is staged and finalized (/etc carried over at shutdown)`)];
  }
  return [f("finalize", "info", `deployment ${next.id} is staged; its /etc is finalized at shutdown (particle-finalize.service carries the booted /etc over)`,
    "reboot cleanly (systemctl reboot); after a power cut the update boots with the /etc of staging time: run `particle finalize` before rebooting to carry later edits")];
}

function upgradeCheckFindings(facts: DoctorFacts): Finding[] {
  const uc = facts.upgradeCheck;
  if (uc === null) return [f("upgrade-check", "info", "last upgrade check: never", "`particle upgrade --check`, or enable particle-upgrade.timer; every `particle upgrade` records its check in particle/upgrade-check.json")];
  if ("unreadable" in uc) return [f("upgrade-check", "warning", `the upgrade-check record is unreadable: ${uc.unreadable}`, "delete it; the next `particle upgrade` writes it again")];
  const ref = uc.reference ?? "no tracked image";
  if (uc.result === "failed") return [f("upgrade-check", "warning", `the last upgrade check (${uc.at}, ${ref}) failed: ${uc.error ?? "no reason recorded"}`, "`particle upgrade --check` shows the error; check the network, the registry and the signature policy")];
  if (uc.result === "available") return [f("upgrade-check", "info", `the last upgrade check (${uc.at}) found an update of ${ref}`, "`particle upgrade` stages it")];
  if (uc.result === "staged") return [f("upgrade-check", "ok", `the last upgrade check (${uc.at}) staged ${ref} as deployment ${uc.stagedId ?? "?"}`)];
  return [f("upgrade-check", "ok", `the last upgrade check (${uc.at}) found ${ref} current`)];
}
