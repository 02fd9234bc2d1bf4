// Installing systemd-boot by copying its EFI binary (what `bootctl install` does, minus the EFI
// variables, which a disk image built on another machine cannot set): EFI/BOOT/BOOTX64.EFI is the
// removable-media path every UEFI firmware tries when it has no boot entry of its own.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { renderLoaderConf, type LoaderConf } from "../bls/loader-conf.ts";
import { fsyncDir, writeFileAtomic } from "../system/atomic.ts";
import { ENTRIES_DIR } from "./entries.ts";

export const SYSTEMD_BOOT_EFI = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/** Where to take systemd-bootx64.efi from: the tree being installed first (its loader matches its systemd), then the host. */
export function findSystemdBootEfi(treeRoots: readonly string[]): string | undefined {
  for (const r of treeRoots) {
    const p = join(r, SYSTEMD_BOOT_EFI);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export const LOADER_CONF = "loader/loader.conf";

export function installSystemdBoot(esp: string, efiBinary: string, conf: LoaderConf = {}): void {
  for (const [dir, file] of [["EFI/BOOT", "BOOTX64.EFI"], ["EFI/systemd", "systemd-bootx64.efi"]] as const) {
    mkdirSync(join(esp, dir), { recursive: true });
    writeFileAtomic(join(esp, dir, file), readFileSync(efiBinary));
  }
  mkdirSync(join(esp, ENTRIES_DIR), { recursive: true });
  // Marks loader/entries/ as holding BLS type 1 entries, as bootctl does.
  writeFileAtomic(join(esp, "loader/entries.srel"), "type1\n");
  writeFileAtomic(join(esp, LOADER_CONF), renderLoaderConf(conf));
  fsyncDir(esp);
}
