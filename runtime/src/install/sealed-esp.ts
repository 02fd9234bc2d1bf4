// The ESP of a sealed install: systemd-boot signed with the owner's db key, the owner's .auth files
// where systemd-boot's secure-boot-enroll finds them (a machine in setup mode enrolls them on its
// first boot and resets), the signed UKI as a Type #2 entry with a boot counter, and the marker
// that tells `particle stage` and `particle kargs` that this machine only boots sealed UKIs.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { LoaderConf } from "../bls/loader-conf.ts";
import { fsyncDir, writeFileAtomic } from "../system/atomic.ts";
import { AUTH_FILES, signingKey, type KeyDir } from "../seal/keys.ts";
import { ENROLL_DIR, SEALED_MARKER, UKI_DIR, UKI_PREFIX } from "../seal/plan.ts";

/** No menu editor (it could not change a signed command line anyway), and enrollment without a
 *  prompt when the firmware is in setup mode, as on a machine handed over with its keys cleared. */
export const SEALED_LOADER_CONF: LoaderConf = { default: `${UKI_PREFIX}*`, timeout: 0, editor: false, secureBootEnroll: "force" };

export function sealingKeys(dir: string, bootloader: string | undefined): KeyDir {
  if (bootloader === "grub") throw new Error("--sealed: only with systemd-boot (GRUB does not boot signed UKIs with boot counting here)");
  const keys = signingKey(dir);
  for (const f of AUTH_FILES) if (!existsSync(join(dir, f))) throw new Error(`--sealed ${dir}: no ${f} (make the keys with particle keys create)`);
  return keys;
}

/** Writes enrollment files, the UKI (before the marker that makes stage insist on UKIs). */
export function writeSealedEsp(esp: string, keys: KeyDir, uki: string, name: string): string {
  mkdirSync(join(esp, ENROLL_DIR), { recursive: true });
  for (const f of AUTH_FILES) writeFileAtomic(join(esp, ENROLL_DIR, f), readFileSync(join(keys.dir, f)));
  mkdirSync(join(esp, UKI_DIR), { recursive: true });
  writeFileAtomic(join(esp, UKI_DIR, name), readFileSync(uki));
  writeFileAtomic(join(esp, SEALED_MARKER), "sealed: entries are signed UKIs under EFI/Linux (particle seal)\n");
  fsyncDir(esp);
  return name;
}
