// The kernel command line, parsed into a typed boot plan. Pure: takes the text (reading
// /proc/cmdline is main.ts's job), so every case is a table row in test/unit/cmdline.test.ts.
//
// Splitting follows the kernel's own rule (lib/cmdline.c, next_arg): arguments are separated by
// whitespace; a double quote toggles quoting, so spaces inside quotes do not split; there are NO
// escapes (a backslash is an ordinary character, and a double quote cannot be part of a value).
// Quotes around the whole argument ("a=b c") or around the value (a="b c") are removed; any other
// quote stays in the text, as the kernel leaves it.
import * as z from "zod/mini";
import { DeploymentId, Sha256Hex } from "../../runtime/src/manifest.ts";
import { VerityMode } from "../../runtime/src/mounts/plan.ts";
import { overlayrootSchema, parseOverlayroot, type Overlayroot } from "./overlayroot.ts";
import { lazySchema } from "../../runtime/src/mounts/lazy-schema.ts";

// One splitter for the whole project: runtime/src/bls/kargs.ts (boot entries) uses the same rule.
export { splitCmdline } from "../../runtime/src/bls/kargs.ts";
import { splitCmdline } from "../../runtime/src/bls/kargs.ts";

const unquote = (s: string) => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s);

/** One argument as key and value (value undefined for a bare flag like `ro`). */
export function splitArg(arg: string): { key: string; value: string | undefined } {
  const a = unquote(arg);
  const eq = a.indexOf("=");
  if (eq < 0) return { key: a, value: undefined };
  return { key: a.slice(0, eq), value: unquote(a.slice(eq + 1)) };
}

const EtcMode = z.enum(["persistent", "transient"]);
const VarMode = z.enum(["persistent", "luks"]);

// The type of the plan. parseCmdline validates each field with its own schema, to name the
// argument in the error, so particle-boot never builds this one (see lazy-schema.ts).
export const bootArgsSchema = lazySchema(() => z.object({
  /** particle.deploy=<id>: the deployment directory under particle/deploy/. Absent in a sealed UKI,
   *  which is built before any machine has named the deployment: the image digest then finds it. */
  deploy: z.optional(DeploymentId),
  /** particle.image=<sha256 hex>: fs-verity digest of the image (sha256 for squashfs), pinned by the boot entry. */
  image: Sha256Hex,
  /** particle.verity=: absent means require where the filesystem supports fs-verity. */
  verity: z.optional(VerityMode),
  /** particle.etc=transient: /etc gets a tmpfs upper (strict mode of a sealed UKI); absent or
   *  `persistent`: the deployment's own upper on disk. */
  etc: z.optional(EtcMode),
  /** particle.var=luks: /var is the LUKS2 partition labelled particle-var, unlocked by the TPM2
   *  policy the owner signed for this UKI (formatted and enrolled on its first boot); a plaintext
   *  one is refused. Absent or `persistent`: the shared /var directory on the physical root. */
  var: z.optional(VarMode),
  /** overlayroot= on the command line (it wins over /etc/overlayroot.conf). */
  overlayroot: z.optional(overlayrootSchema()),
}));
export type BootArgs = z.infer<ReturnType<typeof bootArgsSchema>>;

const PARTICLE_KEYS = ["particle.deploy", "particle.image", "particle.verity", "particle.etc", "particle.var"] as const;

/** Parses the command line. Throws an Error whose message starts with the offending argument. */
export function parseCmdline(text: string): BootArgs {
  const seen = new Map<string, string>();
  let overlayroot: Overlayroot | undefined;
  for (const arg of splitCmdline(text)) {
    const { key, value } = splitArg(arg);
    if (key === "overlayroot") {
      if (value === undefined) throw new Error(`overlayroot: needs a value (overlayroot=tmpfs, overlayroot=disabled, …)`);
      // The last one wins, as the kernel and Ubuntu's script treat repeated arguments.
      overlayroot = parseOverlayroot(value, "overlayroot");
      continue;
    }
    if (!key.startsWith("particle.")) continue;
    if (!(PARTICLE_KEYS as readonly string[]).includes(key)) {
      throw new Error(`${key}: unknown argument (particle-boot knows ${PARTICLE_KEYS.join(", ")})`);
    }
    if (value === undefined || value === "") throw new Error(`${key}: needs a value (${key}=…)`);
    const prev = seen.get(key);
    // A boot entry pins one image; two different values mean a broken entry, not a preference.
    if (prev !== undefined && prev !== value) throw new Error(`${key}: given twice with different values (${prev}, ${value})`);
    seen.set(key, value);
  }
  const field = (key: string, schema: { safeParse(v: unknown): { success: boolean; data?: unknown } }, what: string, required: boolean) => {
    const v = seen.get(key);
    if (v === undefined) {
      if (required) throw new Error(`${key}: missing from the kernel command line (expected ${key}=${what})`);
      return undefined;
    }
    const r = schema.safeParse(v);
    if (!r.success) throw new Error(`${key}=${v}: invalid, expected ${what}`);
    return r.data;
  };
  const plan: BootArgs = {
    image: field("particle.image", Sha256Hex, "the image's sha256 digest, 64 lowercase hex digits", true) as string,
  };
  const deploy = field("particle.deploy", DeploymentId, "a deployment id such as 1 or 2-ab12", false) as string | undefined;
  if (deploy !== undefined) plan.deploy = deploy;
  const verity = field("particle.verity", VerityMode, "require, optional or off", false) as BootArgs["verity"];
  if (verity) plan.verity = verity;
  const etc = field("particle.etc", EtcMode, "persistent or transient", false) as BootArgs["etc"];
  if (etc) plan.etc = etc;
  const v = field("particle.var", VarMode, "persistent or luks", false) as BootArgs["var"];
  if (v) plan.var = v;
  if (overlayroot) plan.overlayroot = overlayroot;
  return plan;
}
