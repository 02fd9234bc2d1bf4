// loader/loader.conf. Particle writes it once, at install, with a glob default: systemd-boot picks
// the first entry in its order that matches, and an entry whose tries ran out is ordered last, so a
// glob (unlike an exact id) lets a failing deployment fall back to the previous one by itself.
// Switching the default is done on the entries (see order.ts), never by rewriting this file.
import { z } from "zod";
import { globMatch } from "./order.ts";

export const DEFAULT_PATTERN = "particle-*";

export const LoaderConf = z.object({
  /** Glob or entry id of the default entry. */
  default: z.string().min(1).default(DEFAULT_PATTERN),
  /** Menu timeout in seconds; 0 hides the menu (a key press still shows it). */
  timeout: z.number().int().nonnegative().default(3),
  /** Whether the kernel command line may be edited at the menu. */
  editor: z.boolean().default(true),
  consoleMode: z.enum(["auto", "keep", "max"]).optional(),
  /** systemd-boot enrolls loader/keys/<name>/ when the firmware is in setup mode (sealed installs). */
  secureBootEnroll: z.enum(["off", "manual", "if-safe", "force"]).optional(),
});
export type LoaderConf = z.input<typeof LoaderConf>;

export function renderLoaderConf(conf: LoaderConf = {}): string {
  const c = LoaderConf.parse(conf);
  const lines = [
    "# Written by particle install. The default is a glob: systemd-boot boots the first matching entry,",
    "# and entries are ordered by their version (a boot-order generation) with failed ones last.",
    `default ${c.default}`,
    `timeout ${c.timeout}`,
    `editor ${c.editor ? "yes" : "no"}`,
  ];
  if (c.consoleMode) lines.push(`console-mode ${c.consoleMode}`);
  if (c.secureBootEnroll) lines.push(`secure-boot-enroll ${c.secureBootEnroll}`);
  return lines.join("\n") + "\n";
}

/** The settings we care about from any loader.conf (unknown lines are ignored, as the loader does). */
export function parseLoaderConf(text: string): { default?: string; timeout?: string } {
  const out: { default?: string; timeout?: string } = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === "default") out.default = m[2]!.trim();
    if (m[1] === "timeout") out.timeout = m[2]!.trim();
  }
  return out;
}

/**
 * Which entry systemd-boot would boot, given its ordered entry ids and the `default` setting:
 * the first id the pattern matches, or else the first entry. (EFI variables set with `bootctl
 * set-default` / `set-oneshot` override this; particle never sets them.)
 */
export function predictDefault(orderedIds: readonly string[], pattern: string | undefined): string | undefined {
  if (pattern && pattern !== "@saved") {
    const hit = orderedIds.find((id) => globMatch(pattern.toLowerCase(), id));
    if (hit) return hit;
  }
  return orderedIds[0];
}
