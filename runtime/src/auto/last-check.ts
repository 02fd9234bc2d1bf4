// The record of the last upgrade check, kept in the store so that `particle status` (and doctor) can
// say when the machine last looked for an update and what it found, as `rpm-ostree status` shows
// the automatic updates' last run. Written by every `particle upgrade`, timer or not.
import { z } from "zod";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { storeLayout } from "../store/layout.ts";
import { writeFileAtomic } from "../system/atomic.ts";
import { parseJsonText } from "../json-text.ts";

export const LastCheck = z.object({
  /** ISO 8601 time the check ended. */
  at: z.string(),
  /** The tracked image reference. */
  reference: z.string().nullable(),
  /** current: nothing new; available: an update exists and was not staged (policy check, or --check);
   *  staged: staged for the next boot (deployment `stagedId`); failed: see `error`. */
  result: z.enum(["current", "available", "staged", "failed"]),
  /** The digest the registry had, when it answered. */
  digest: z.string().nullable(),
  stagedId: z.string().nullable(),
  /** What went wrong, in the words the command printed. */
  error: z.string().nullable(),
  /** The policy it ran with (--auto) or null for a command typed by hand. */
  policy: z.enum(["check", "stage", "reboot"]).nullable(),
});
export type LastCheck = z.infer<typeof LastCheck>;

export const lastCheckPath = (sysroot: string) => join(storeLayout(sysroot).root, "upgrade-check.json");

/** Pure: the record from the file's text; a damaged record is reported by name, not trusted. */
export function parseLastCheck(text: string, where: string): LastCheck {
  const r = LastCheck.safeParse(parseJsonText(text, where));
  if (!r.success) throw new Error(`${where}: not an upgrade-check record: ${r.error.issues[0]?.message ?? "invalid"}`);
  return r.data;
}

export function readLastCheck(sysroot: string): LastCheck | null {
  const p = lastCheckPath(sysroot);
  if (!existsSync(p)) return null;
  return parseLastCheck(readFileSync(p, "utf8"), p);
}

export function writeLastCheck(sysroot: string, c: LastCheck): void {
  const p = lastCheckPath(sysroot);
  if (!existsSync(storeLayout(sysroot).root)) return;
  // 0644: status is readable by every user, and the record holds nothing private.
  writeFileAtomic(p, JSON.stringify(LastCheck.parse(c)) + "\n", 0o644);
}
