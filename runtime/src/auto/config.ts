// /etc/particle/upgrade.conf: what the upgrade timer does with an update it finds. The syntax is
// systemd's (sections, Key=Value, # and ; comments) because it sits beside unit drop-ins and admins
// already know it; rpm-ostreed.conf's AutomaticUpdatePolicy is the model.
import { z } from "zod";

export const UPGRADE_CONF = "/etc/particle/upgrade.conf";

export const UpgradePolicy = z.enum(["check", "stage", "reboot"]);
export type UpgradePolicy = z.infer<typeof UpgradePolicy>;

export const UpgradeConfig = z.object({
  /** check: only record what is available; stage: stage it for the next boot; reboot: stage, then reboot into it. */
  policy: UpgradePolicy,
});
export type UpgradeConfig = z.infer<typeof UpgradeConfig>;

export const DEFAULT_CONFIG: UpgradeConfig = { policy: "stage" };

const KEYS: Record<string, keyof UpgradeConfig> = { Policy: "policy" };

/** Pure: the config from the file's text. `where` names the file in errors. */
export function parseUpgradeConf(text: string, where: string): UpgradeConfig {
  const raw: Record<string, string> = {};
  let section = "";
  text.split("\n").forEach((line, i) => {
    const at = `${where}:${i + 1}`;
    const s = line.trim();
    if (s === "" || s.startsWith("#") || s.startsWith(";")) return;
    const sec = /^\[([^\]]+)\]$/.exec(s);
    if (sec) {
      section = sec[1]!;
      if (section !== "Upgrade") throw new Error(`${at}: unknown section [${section}] (only [Upgrade])`);
      return;
    }
    const eq = s.indexOf("=");
    if (eq < 0) throw new Error(`${at}: expected Key=Value, got ${JSON.stringify(s)}`);
    if (section !== "Upgrade") throw new Error(`${at}: ${s.slice(0, eq).trim()}= is outside the [Upgrade] section`);
    const key = s.slice(0, eq).trim();
    const field = KEYS[key];
    if (!field) throw new Error(`${at}: unknown key ${key}= (known: ${Object.keys(KEYS).join(", ")})`);
    raw[field] = s.slice(eq + 1).trim();
  });
  const merged = { ...DEFAULT_CONFIG, ...raw };
  const r = UpgradeConfig.safeParse(merged);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = Object.entries(KEYS).find(([, f]) => f === issue.path[0])?.[0] ?? String(issue.path[0]);
    throw new Error(`${where}: ${key}=${JSON.stringify((merged as Record<string, unknown>)[String(issue.path[0])])} is not one of ${UpgradePolicy.options.join(", ")}`);
  }
  return r.data;
}
