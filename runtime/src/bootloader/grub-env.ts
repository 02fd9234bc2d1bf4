// GRUB's environment block (grubenv), encoded and decoded in TypeScript rather than by spawning
// grub-editenv: the installed tree need not carry grub-common, a process spawn costs 0.3-0.6 s
// under TCG, and the write goes through the same temp/fsync/rename path as every other file a
// reboot depends on. The format (grub-core/lib/envblk.c): the signature line, then `name=value`
// lines, with `\` and newline in values escaped by a backslash, padded with '#' to exactly 1024
// bytes. GRUB's save_env rewrites the file in place, so the size must never change.
//
// Also the pure planners of the counting state: start counting a new default, stop (rollback),
// bless the booted deployment, and a one-shot next_entry.

export const ENV_SIZE = 1024;
export const ENV_SIGNATURE = "# GRUB Environment Block\n";
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export type GrubEnv = Map<string, string>;

export function encodeGrubEnv(env: GrubEnv): Buffer {
  let body = ENV_SIGNATURE;
  for (const [k, v] of env) {
    if (!NAME.test(k)) throw new Error(`grubenv: invalid variable name ${JSON.stringify(k)}`);
    body += `${k}=${v.replace(/[\\\n]/g, (c) => `\\${c}`)}\n`;
  }
  const bytes = Buffer.from(body, "utf8");
  if (bytes.length > ENV_SIZE) throw new Error(`grubenv: ${bytes.length} bytes of variables do not fit in ${ENV_SIZE}`);
  return Buffer.concat([bytes, Buffer.alloc(ENV_SIZE - bytes.length, "#")]);
}

/** `where` names the file in errors (its path, as the caller read it). */
export function parseGrubEnv(data: Buffer | string, where = "grubenv"): GrubEnv {
  const text = typeof data === "string" ? data : data.toString("utf8");
  if (!text.startsWith(ENV_SIGNATURE)) throw new Error(`${where}: missing the '# GRUB Environment Block' signature`);
  const env: GrubEnv = new Map();
  let i = ENV_SIGNATURE.length;
  while (i < text.length) {
    if (text[i] === "#") {
      // Padding (or a comment): skip the rest of the line.
      const nl = text.indexOf("\n", i);
      if (nl < 0) break;
      i = nl + 1;
      continue;
    }
    let line = "";
    for (; i < text.length && text[i] !== "\n"; i++) {
      if (text[i] === "\\" && i + 1 < text.length) i++;
      line += text[i];
    }
    i++;
    const eq = line.indexOf("=");
    if (eq > 0) env.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return env;
}

/** After staging: `deployId` is the new default and gets `tries` boots to be blessed. */
export function startCounting(env: GrubEnv, deployId: string, tries: number): GrubEnv {
  const out = new Map(env);
  out.set("particle_counted", deployId);
  out.set("boot_counter", String(tries));
  out.set("boot_success", "0");
  return out;
}

/** After a rollback: the new default was booted before; nothing is counted. */
export function stopCounting(env: GrubEnv): GrubEnv {
  const out = new Map(env);
  for (const k of ["particle_counted", "boot_counter", "boot_success"]) out.delete(k);
  return out;
}

export interface BlessPlan {
  env: GrubEnv;
  changed: boolean;
  message: string;
}

/**
 * Pure: what `particle bless` does for the booted deployment. Only the counted deployment is
 * blessed: a fallback or one-shot boot of another one must not mark the failing default good.
 */
export function planBless(env: GrubEnv, bootedId: string | undefined): BlessPlan {
  const counted = env.get("particle_counted");
  if (!bootedId) return { env, changed: false, message: "not booted from a particle deployment; nothing to bless" };
  if (!counted || !env.has("boot_counter")) return { env, changed: false, message: `deployment ${bootedId}: no boot counting in progress` };
  if (counted !== bootedId) {
    return { env, changed: false, message: `booted deployment ${bootedId}, but the counted one is ${counted} (a fallback or one-shot boot): left as it is, ${env.get("boot_counter")} tries left` };
  }
  const out = new Map(env);
  out.set("boot_success", "1");
  out.delete("boot_counter");
  return { env: out, changed: true, message: `deployment ${bootedId} marked good (boot_success=1)` };
}

/** A one-shot boot of `menuId` (the menu entry id) at the next boot only. */
export function setNextEntry(env: GrubEnv, menuId: string): GrubEnv {
  return new Map(env).set("next_entry", menuId);
}
