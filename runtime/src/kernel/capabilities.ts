// What a kernel can mount, and so which root formats it can boot. Pure: facts in (a release string,
// its build config and module list when the tree or the running system has them), verdicts out.
// Shared by the stage-time format choice (the deployment's own kernel) and `particle doctor` (the
// running kernel).
//
// Where each requirement comes from (upstream kernel history):
//   - overlayfs data-only lower layers (`lowerdir=a::b`): 6.5 (Documentation/filesystems/overlayfs.rst,
//     "Data-only lower layers"); fs-verity checked metacopy (`verity=`): 6.6. No config option
//     selects them: only the version says, so a vendor kernel with backports (RHEL 9) is judged
//     by its version and refused.
//   - EROFS: in fs/ since 5.4 (CONFIG_EROFS_FS); a regular file as mount source
//     (CONFIG_EROFS_FS_BACKED_BY_FILE): 6.12. Older kernels need a loop device (CONFIG_BLK_DEV_LOOP).
//   - squashfs (CONFIG_SQUASHFS) always mounts a block device; particle's images are zstd
//     (CONFIG_SQUASHFS_ZSTD, 4.14).
//   - fs-verity: CONFIG_FS_VERITY (5.4), and the filesystem must support it as well.
import { z } from "zod";
import { RootFormat } from "../manifest.ts";
import { enabled, type KernelConfig } from "./config.ts";
import { atLeast, parseKernelRelease } from "./release.ts";

/** What was found out about one kernel. `null`: that kind of evidence was not available. */
export const KernelFacts = z.object({
  /** `uname -r` of the kernel (the /usr/lib/modules/<kver> directory name). */
  release: z.string(),
  /** Its build config (CONFIG_X → value), from /boot/config-<kver> or /usr/lib/modules/<kver>/config. */
  config: z.record(z.string(), z.string()).nullable(),
  /** Module names present, loadable (kernel/…/NAME.ko*) or built in (modules.builtin). */
  modules: z.array(z.string()).nullable(),
  /** Running kernel only: the filesystems it has registered now (/proc/filesystems). */
  filesystems: z.array(z.string()).nullable().default(null),
  /** Running kernel only: modules loaded or built in, as /sys/module lists them. */
  loaded: z.array(z.string()).nullable().default(null),
});
export type KernelFacts = z.input<typeof KernelFacts>;

export const Support = z.enum(["yes", "no", "unknown"]);
export type Support = z.infer<typeof Support>;

export const Capability = z.object({
  support: Support,
  /** The evidence, e.g. "CONFIG_EROFS_FS=m" or "kernel 6.1 < 6.5". */
  why: z.string(),
});
export type Capability = z.infer<typeof Capability>;

export const KernelCapabilities = z.object({
  release: z.string(),
  erofs: Capability,
  erofsFileBacked: Capability,
  loop: Capability,
  overlay: Capability,
  overlayDataOnly: Capability,
  overlayVerity: Capability,
  squashfs: Capability,
  fsVerity: Capability,
});
export type KernelCapabilities = z.infer<typeof KernelCapabilities>;

export const FormatVerdict = z.object({
  format: RootFormat,
  boots: z.boolean(),
  why: z.string(),
});
export type FormatVerdict = z.infer<typeof FormatVerdict>;

/** Newest first: the order `--format auto` tries them in (DESIGN.md, "Root formats"). */
export const FORMAT_PREFERENCE: RootFormat[] = ["composefs", "erofs", "squashfs"];

const yes = (why: string): Capability => ({ support: "yes", why });
const no = (why: string): Capability => ({ support: "no", why });
const unknown = (why: string): Capability => ({ support: "unknown", why });

/** A feature that is a config option and (when modular) a module or a registered filesystem. */
function feature(f: KernelFacts, option: string, module: string, fs?: string): Capability {
  if (f.config) {
    return enabled(f.config, option) ? yes(`${option}=${f.config[option]}`) : no(`${option} is not set`);
  }
  if (fs && f.filesystems?.includes(fs)) return yes(`${fs} in /proc/filesystems`);
  if (f.loaded?.includes(module)) return yes(`${module} in /sys/module`);
  if (f.modules) return f.modules.includes(module) ? yes(`module ${module} present`) : no(`no ${module} module, and no kernel config to say it is built in`);
  return unknown(`no kernel config or module list found for ${f.release}`);
}

function version(f: KernelFacts, major: number, minor: number, what: string, base: Capability): Capability {
  if (base.support === "no") return no(`needs ${what}: ${base.why}`);
  const r = parseKernelRelease(f.release);
  return atLeast(r, major, minor)
    ? yes(`kernel ${r.major}.${r.minor} >= ${major}.${minor}`)
    : no(`kernel ${r.major}.${r.minor} < ${major}.${minor}`);
}

export function kernelCapabilities(facts: KernelFacts): KernelCapabilities {
  const f = KernelFacts.parse(facts);
  const erofs = feature(f, "CONFIG_EROFS_FS", "erofs", "erofs");
  const overlay = feature(f, "CONFIG_OVERLAY_FS", "overlay", "overlay");
  const r = parseKernelRelease(f.release);
  let erofsFileBacked: Capability;
  if (erofs.support === "no") erofsFileBacked = no(`no EROFS: ${erofs.why}`);
  else if (!atLeast(r, 6, 12)) erofsFileBacked = no(`kernel ${r.major}.${r.minor} < 6.12`);
  else if (f.config) erofsFileBacked = enabled(f.config, "CONFIG_EROFS_FS_BACKED_BY_FILE") ? yes("CONFIG_EROFS_FS_BACKED_BY_FILE=y") : no("CONFIG_EROFS_FS_BACKED_BY_FILE is not set");
  else erofsFileBacked = unknown(`kernel ${r.major}.${r.minor} >= 6.12, no config to say whether CONFIG_EROFS_FS_BACKED_BY_FILE is set`);
  let squashfs = feature(f, "CONFIG_SQUASHFS", "squashfs", "squashfs");
  if (squashfs.support === "yes" && f.config && !enabled(f.config, "CONFIG_SQUASHFS_ZSTD")) squashfs = no("CONFIG_SQUASHFS_ZSTD is not set (particle's squashfs images are zstd)");
  let fsVerity: Capability;
  if (f.config) fsVerity = enabled(f.config, "CONFIG_FS_VERITY") ? yes("CONFIG_FS_VERITY=y") : no("CONFIG_FS_VERITY is not set");
  else fsVerity = atLeast(r, 5, 4) ? unknown(`kernel ${r.major}.${r.minor} >= 5.4, no config to say whether CONFIG_FS_VERITY is set`) : no(`kernel ${r.major}.${r.minor} < 5.4`);
  return {
    release: f.release,
    erofs,
    erofsFileBacked,
    loop: feature(f, "CONFIG_BLK_DEV_LOOP", "loop"),
    overlay,
    overlayDataOnly: version(f, 6, 5, "overlayfs", overlay),
    overlayVerity: version(f, 6, 6, "overlayfs", overlay),
    squashfs,
    fsVerity,
  };
}

const works = (c: Capability) => c.support !== "no";

/** Which root formats this kernel can boot, newest first, each with the reason. */
export function formatVerdicts(c: KernelCapabilities): FormatVerdict[] {
  const missing = (pairs: [string, Capability][]) => pairs.filter(([, cap]) => !works(cap)).map(([n, cap]) => `${n}: ${cap.why}`);
  const verdict = (format: RootFormat, needs: [string, Capability][], ok: string): FormatVerdict => {
    const m = missing(needs);
    return m.length ? { format, boots: false, why: m.join("; ") } : { format, boots: true, why: ok };
  };
  const imageSource: [string, Capability] = c.erofsFileBacked.support === "yes" ? ["file-backed EROFS", c.erofsFileBacked] : ["loop devices", c.loop];
  return [
    verdict("composefs", [["EROFS", c.erofs], ["overlayfs", c.overlay], ["overlayfs data-only lower layers (6.5)", c.overlayDataOnly], ["overlayfs verity= (6.6)", c.overlayVerity]],
      "EROFS and overlayfs with data-only lowers and verity="),
    verdict("erofs", [["EROFS", c.erofs], [imageSource[0], imageSource[1]]],
      c.erofsFileBacked.support === "yes" ? "EROFS, mounted from the image file" : "EROFS on a loop device"),
    verdict("squashfs", [["squashfs", c.squashfs], ["loop devices", c.loop]], "squashfs (zstd) on a loop device"),
  ];
}
