// Ubuntu's overlayroot setting (cloud-initramfs-tools), parsed. Pure: values in, typed config out.
//
//   overlayroot=MODE[:OPT=VAL[,OPT=VAL…]]
//   MODE  tmpfs | device | disabled | "" (empty: disabled) — crypt is Ubuntu-only and refused
//   OPTS  tmpfs:  swap=0|1, recurse=0|1
//         device: dev=DEVICE (required; /dev/…, LABEL=…, UUID=…), timeout=SECONDS, mkfs=0, swap, recurse,
//                 fstype=TYPE[/TYPE…] (a Particle-OS extension: mount(2) needs a type, mount(8) guessed it)
//
// Options are separated by commas, modes from options by the first colon ("tmpfs:swap=1,recurse=0").
// swap= and recurse= are accepted for compatibility and recorded: nothing is mounted below the
// root when particle-boot runs (so recursing has nothing to do) and swap is systemd's business.
// The same syntax appears in /etc/overlayroot.conf as a shell assignment, overlayroot="…".
import * as z from "zod/mini";
import { lazySchema } from "../../runtime/src/mounts/lazy-schema.ts";

// The type of an overlayroot setting. parseOverlayroot checks every field itself, to say which
// option is wrong, so particle-boot never builds the schema (see lazy-schema.ts).
export const overlayrootSchema = lazySchema(() => z.discriminatedUnion("mode", [
  z.object({ mode: z.literal("disabled") }),
  z.object({ mode: z.literal("tmpfs"), swap: z.boolean(), recurse: z.boolean() }),
  z.object({
    mode: z.literal("device"),
    dev: z.string().check(z.minLength(1)),
    timeout: z.optional(z.int().check(z.gte(0))),
    swap: z.boolean(),
    recurse: z.boolean(),
    fsTypes: z.array(z.string().check(z.regex(/^[a-z0-9]+$/))).check(z.minLength(1)),
  }),
]));
export type Overlayroot = z.infer<ReturnType<typeof overlayrootSchema>>;

const DEFAULT_FS_TYPES = ["ext4", "xfs", "btrfs"];
const FS_TYPE = /^[a-z0-9]+$/;
const KNOWN: Record<string, string[]> = {
  tmpfs: ["swap", "recurse"],
  device: ["dev", "timeout", "mkfs", "swap", "recurse", "fstype"],
};

/** `dev=LABEL=x` and `dev=UUID=x` name udev's by-label/by-uuid links, as in Ubuntu. */
function devicePath(dev: string): string {
  const m = /^(LABEL|UUID|PARTUUID|PARTLABEL)=(.+)$/.exec(dev);
  return m ? `/dev/disk/by-${m[1]!.toLowerCase()}/${m[2]}` : dev;
}

/** Parses one overlayroot value; `where` names its origin in errors (the argument or the file). */
export function parseOverlayroot(value: string, where = "overlayroot"): Overlayroot {
  const bad = (why: string) => new Error(`${where}=${JSON.stringify(value)}: ${why}`);
  const colon = value.indexOf(":");
  const mode = colon < 0 ? value : value.slice(0, colon);
  const rest = colon < 0 ? "" : value.slice(colon + 1);
  if (mode === "" || mode === "disabled") {
    if (rest) throw bad(`"${mode || "(empty)"}" takes no options`);
    return { mode: "disabled" };
  }
  if (mode === "crypt") throw bad("crypt mode is not supported by particle-boot (use tmpfs or device)");
  const known = KNOWN[mode];
  if (!known) throw bad(`unknown mode "${mode}" (expected tmpfs, device or disabled)`);
  const opts = new Map<string, string>();
  for (const item of rest ? rest.split(",") : []) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw bad(`option "${item}" is not KEY=VALUE`);
    const k = item.slice(0, eq);
    if (!known.includes(k)) throw bad(`unknown option "${k}" for ${mode} (known: ${known.join(", ")})`);
    if (opts.has(k)) throw bad(`option "${k}" given twice`);
    opts.set(k, item.slice(eq + 1));
  }
  const flag = (k: string, dflt: boolean) => {
    const v = opts.get(k);
    if (v === undefined) return dflt;
    if (v !== "0" && v !== "1") throw bad(`${k}=${v}: expected 0 or 1`);
    return v === "1";
  };
  // Ubuntu's defaults: swap=0, recurse=1.
  const swap = flag("swap", false);
  const recurse = flag("recurse", true);
  if (mode === "tmpfs") return { mode, swap, recurse };
  const dev = opts.get("dev");
  if (!dev) throw bad("device mode needs dev=DEVICE");
  if (flag("mkfs", false)) throw bad("mkfs=1 is not supported: particle-boot runs no programs; format the device beforehand");
  const t = opts.get("timeout");
  if (t !== undefined && !/^\d+$/.test(t)) throw bad(`timeout=${t}: expected whole seconds`);
  const fsTypes = opts.get("fstype")?.split("/") ?? DEFAULT_FS_TYPES;
  for (const f of fsTypes) if (!FS_TYPE.test(f)) throw bad(`fstype=${opts.get("fstype")}: "${f}" is not a filesystem type like ext4`);
  const out: Extract<Overlayroot, { mode: "device" }> = { mode: "device", dev: devicePath(dev), swap, recurse, fsTypes };
  if (t !== undefined) out.timeout = Number(t);
  return out;
}

/**
 * The value of `overlayroot` in /etc/overlayroot.conf, a shell fragment: the last assignment
 * wins; double or single quotes are removed (no escapes, no expansion); comments and other
 * variables (overlayroot_cfgdisk, …) are ignored. undefined when the file does not set it.
 */
export function parseOverlayrootConf(text: string): string | undefined {
  let value: string | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const m = /^overlayroot=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[1]!;
    const q = /^(["'])(.*)\1\s*(#.*)?$/.exec(v);
    value = q ? q[2]! : stripComment(v).trim();
  }
  return value;
}

/** Cuts a shell comment ("#" after whitespace). A scan: /\s+#.*$/ backtracks quadratically on a long run of blanks. */
function stripComment(v: string): string {
  for (let i = 1; i < v.length; i++) if (v[i] === "#" && /\s/.test(v[i - 1]!)) return v.slice(0, i);
  return v;
}

/** The command line wins over the configuration file; neither means disabled. */
export function resolveOverlayroot(fromCmdline: Overlayroot | undefined, confValue: string | undefined, confPath: string): Overlayroot {
  if (fromCmdline) return fromCmdline;
  if (confValue === undefined) return { mode: "disabled" };
  return parseOverlayroot(confValue, `${confPath}: overlayroot`);
}
