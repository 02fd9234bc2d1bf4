// The record of the last `particle upgrade --check` (or timer run): where it lives and what it holds.
// Nothing writes it yet; `particle doctor` reads it and says "never" while it is absent.
import { z } from "zod";
import { parseJsonText } from "../json-text.ts";

/** Path on the running system; under a sysroot it is particle/var/lib/particle/upgrade-check.json (/var is the store's var/). */
export const UPGRADE_CHECK_FILE = "/var/lib/particle/upgrade-check.json";

export const UpgradeCheck = z.object({
  schema: z.literal(1),
  /** ISO 8601 time of the check. */
  checkedAt: z.string(),
  /** The image reference that was checked (skopeo syntax). */
  reference: z.string(),
  /** "current": nothing new; "available": a newer digest exists (and maybe was staged); "failed": the check itself failed. */
  result: z.enum(["current", "available", "failed"]),
  /** The digest found at the source, when the check got that far. */
  digest: z.string().optional(),
  /** Why it failed, for "failed". */
  error: z.string().optional(),
});
export type UpgradeCheck = z.infer<typeof UpgradeCheck>;

export function parseUpgradeCheck(text: string, where: string): UpgradeCheck {
  const r = UpgradeCheck.safeParse(parseJsonText(text, where));
  if (!r.success) throw new Error(`${where}: not an upgrade-check record: ${r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`);
  return r.data;
}
