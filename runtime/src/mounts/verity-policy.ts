// Which overlayfs `verity=` to use, given what was asked and what the kernel could measure. Pure.
//
//   asked     fs-verity works on the store   →  overlay verity   image digest checked by
//   require   yes                               require          the kernel (FS_IOC_MEASURE_VERITY)
//   require   no                                — refused —
//   optional  yes                               on               the kernel
//   optional  no                                off + warning    userspace, once, before mount
//   off       (not probed)                      off              the kernel if measured, else userspace
//   (unset)   yes                               require          the kernel
//   (unset)   no                                off + warning    userspace
//
// `on` rather than `require` for optional: files whose metadata carries a digest are still
// checked, but a deployment with objects that could not be sealed still boots (loudly).
// Without fs-verity, overlay verity must be off: with it, every file that has a digest reads EIO.
import type { OverlayVerity, VerityMode } from "./plan.ts";

export interface VerityDecision {
  overlay: OverlayVerity;
  /** The mode in force after applying the default (for /run/particle-booted and status). */
  mode: VerityMode;
  warnings: string[];
}

export function decideVerity(asked: VerityMode | undefined, kernelVerity: boolean, where: string): VerityDecision {
  if (asked === "off") return { overlay: "off", mode: "off", warnings: [] };
  if (kernelVerity) return asked === "optional" ? { overlay: "on", mode: "optional", warnings: [] } : { overlay: "require", mode: "require", warnings: [] };
  if (asked === "require") {
    throw new Error(
      `particle.verity=require: the filesystem holding ${where} does not support fs-verity, so the deployment cannot be verified; ` +
        `boot with particle.verity=optional to accept that`,
    );
  }
  return {
    overlay: "off",
    mode: "optional",
    warnings: [`fs-verity is not available on the filesystem holding ${where}: booting WITHOUT file verification (image digest checked once in userspace)`],
  };
}
