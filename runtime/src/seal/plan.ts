// What a sealed UKI says, decided from values alone: its command line, its os-release, its file
// name on the ESP, and whether a UKI pins a given image. test/unit/seal.test.ts covers each.
import { getArg, joinCmdline, splitCmdline } from "../bls/kargs.ts";
import { fileSafe, DEFAULT_TRIES } from "../bls/filename.ts";
import { ROOT_LABEL } from "../install/disk.ts";

/** Type #2 entries live here on the ESP; systemd-boot finds them without any entry file. */
export const UKI_DIR = "EFI/Linux";
export const UKI_PREFIX = "particle-";
/** On the ESP of a sealed install: tells `particle stage` and `kargs` that entries must be UKIs. */
export const SEALED_MARKER = "loader/particle-sealed";
/** systemd-boot offers loader/keys/<name>/{PK,KEK,db}.auth for enrollment; with `secure-boot-enroll force` it enrolls the set named "auto" without asking. */
export const ENROLL_DIR = "loader/keys/auto";

/**
 * The UKI's command line. It names the root filesystem by label and the deployment by its image
 * digest only: the UKI is built where the keys are, before any machine has a root UUID or a
 * deployment id (particle-boot finds the deployment whose manifest has this digest).
 */
export function sealedCmdline(imageDigest: string, extra: readonly string[] = []): string {
  return joinCmdline([`root=LABEL=${ROOT_LABEL}`, "rw", `particle.image=${imageDigest}`, ...extra]);
}

/** os-release of the tree, plus IMAGE_ID/IMAGE_VERSION, which systemd-boot sorts Type #2 entries by
 *  (the highest IMAGE_VERSION boots first). Later assignments win, so appending is enough. */
export function sealedOsRelease(treeOsRelease: string, version: string): string {
  const base = treeOsRelease.endsWith("\n") || treeOsRelease === "" ? treeOsRelease : `${treeOsRelease}\n`;
  return `${base}IMAGE_ID=particle\nIMAGE_VERSION=${JSON.stringify(version)}\n`;
}

/** `particle-<version>-<digest prefix>+3.efi`: the +N counter is systemd-boot's boot counting. */
export function ukiFileName(version: string, imageDigest: string, tries = DEFAULT_TRIES): string {
  return `${UKI_PREFIX}${fileSafe(version)}-${imageDigest.slice(0, 12)}${tries ? `+${tries}` : ""}.efi`;
}

/** The image digest a UKI command line pins, or undefined. */
export function pinnedImage(cmdline: string): string | undefined {
  return getArg(splitCmdline(cmdline.replace(/\0+$/, "")), "particle.image");
}

/** Why a UKI may not boot image `digest`, or undefined when it pins exactly that image. */
export function pinError(cmdline: string | undefined, digest: string, what: string): string | undefined {
  if (cmdline === undefined) return `${what}: not a UKI (no .cmdline section)`;
  const pinned = pinnedImage(cmdline);
  if (pinned === undefined) return `${what}: its command line does not pin an image (no particle.image=)`;
  if (pinned !== digest) return `${what}: pins image ${pinned}, not the staged image ${digest}`;
  return undefined;
}
