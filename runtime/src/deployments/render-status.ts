// The human view of `particle status`, in the spirit of `bootc status`: one block per deployment.
import type { DeploymentStatus, Host } from "./status.ts";

function block(role: string, d: DeploymentStatus, mark: string): string[] {
  const e = d.bootEntry;
  const tries = e?.triesLeft === null || e === null ? "" : `, ${e.triesLeft} tries left`;
  const lines = [
    `${mark} ${role}: deployment ${d.id} (${d.format})`,
    `      image: ${d.imageDigest}`,
    `     source: ${d.source}`,
    `    version: ${d.version ?? "-"} (staged ${d.created})`,
  ];
  if (d.kernel) lines.push(`     kernel: ${d.kernel}`);
  if (d.layered) lines.push(`    layered: ${d.layered.length ? d.layered.join(" ") : "-"} (on deployment ${d.base?.id ?? "?"})`);
  if (d.image) {
    lines.push(`  reference: ${d.image.reference}`, `     digest: ${d.image.sourceDigest}`);
    if (d.image.manifestDigest !== d.image.sourceDigest) lines.push(`   manifest: ${d.image.manifestDigest}`);
    if (d.image.created) lines.push(`    created: ${d.image.created} (image)`);
    for (const [k, v] of Object.entries(d.image.labels).sort()) lines.push(`      label: ${k}=${v}`);
  }
  lines.push(`      entry: ${e ? `${e.file}${tries}` : "none (will not boot)"}`);
  for (const c of d.etcConflicts) lines.push(`   conflict: /etc/${c.path}: local ${c.local}, image ${c.image}; saved as ${c.savedAs}`);
  return lines;
}

function upgradeLine(c: Host["status"]["upgradeCheck"]): string {
  if (!c) return "Last update check: never";
  const by = c.policy ? ` (timer, policy ${c.policy})` : "";
  const what = {
    current: `no update, ${c.reference} is still ${c.digest}`,
    available: `update available, ${c.reference} ${c.digest} (not staged)`,
    staged: `staged ${c.reference} ${c.digest} as deployment ${c.stagedId}`,
    failed: `failed: ${c.error}`,
  }[c.result];
  return `Last update check: ${c.at}${by}: ${what}`;
}

export function renderStatus(h: Host): string {
  const s = h.status;
  const out: string[] = [];
  if (s.booted) out.push(...block("Booted", s.booted, "●"));
  else out.push("Not booted from a particle deployment (or not on this sysroot).");
  if (s.staged) out.push(...block("Staged (next boot)", s.staged, " "));
  if (s.rollback) out.push(...block("Rollback", s.rollback, " "));
  for (const d of s.other) out.push(...block("Other", d, " "));
  out.push(upgradeLine(s.upgradeCheck));
  const b = s.bootloader;
  out.push(`Boot loader: ${b.type} on ${b.esp ?? "(no ESP found)"}, default ${b.defaultPattern ?? "-"} → ${b.defaultEntry ?? "none"}`);
  out.push(`Sealed: ${b.sealed ? "yes (Secure Boot, signed UKIs under EFI/Linux pin each image)" : "no"}`);
  return out.join("\n") + "\n";
}
