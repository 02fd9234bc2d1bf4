// The ESP mount of a boot whose /etc is transient (particle.etc=transient). Install writes the
// ESP's mount unit into the first deployment's /etc upper, which a transient /etc leaves out; yet
// systemd-bless-boot, status and rollback need the ESP. So particle-boot puts a runtime unit under
// /run/systemd/system (which survives switch-root, and which /etc would override), naming the ESP
// by the partition UUID the boot loader reports (LoaderDevicePartUUID, set by systemd-boot): that
// comes from the firmware's boot path, not from anything writable on the root.
import { mkdirSync, readFileSync, symlinkSync, existsSync } from "node:fs";
import { join } from "node:path";
import { espMountPoint, espMountUnit } from "../../runtime/src/install/esp-mount.ts";
import { writeFileAtomic } from "../../runtime/src/system/atomic.ts";

/** systemd-boot's vendor GUID for its EFI variables (the Boot Loader Interface). */
export const LOADER_VENDOR = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
export const LOADER_PART_UUID_VAR = `/sys/firmware/efi/efivars/LoaderDevicePartUUID-${LOADER_VENDOR}`;

/** An efivarfs file: 4 attribute bytes, then the value, here a NUL-terminated UTF-16LE GUID. */
export function parseLoaderPartUuid(bytes: Uint8Array): string | undefined {
  if (bytes.length < 4) return undefined;
  const text = Buffer.from(bytes.subarray(4)).toString("utf16le").replace(/\0.*$/s, "").trim().toLowerCase();
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(text) ? text : undefined;
}

/** The unit files (relative to /run/systemd/system) that mount the ESP at the tree's mount point. */
export function espRuntimeUnits(tree: string, partUuid: string): Array<{ path: string; text?: string; link?: string }> {
  const u = espMountUnit(espMountPoint(tree), "", `/dev/disk/by-partuuid/${partUuid}`, "particle-boot (particle.etc=transient)");
  return [{ path: u.name, text: u.text }, { path: `local-fs.target.wants/${u.name}`, link: `../${u.name}` }];
}

/** Writes the runtime ESP mount; returns a warning instead when the loader reported no ESP. */
export function writeEspRuntimeMount(runDir: string, tree: string, efivar = LOADER_PART_UUID_VAR): string | undefined {
  let uuid: string | undefined;
  try { uuid = parseLoaderPartUuid(readFileSync(efivar)); } catch { uuid = undefined; }
  if (!uuid) return `particle.etc=transient: the boot loader reported no ESP (${efivar}); the ESP is not mounted, and boot counting cannot bless this boot`;
  let units: ReturnType<typeof espRuntimeUnits>;
  try { units = espRuntimeUnits(tree, uuid); } catch (e) { return `particle.etc=transient: ${(e as Error).message}; the ESP is not mounted`; }
  const dir = join(runDir, "systemd/system");
  for (const f of units) {
    mkdirSync(join(dir, f.path, ".."), { recursive: true });
    if (f.text !== undefined) writeFileAtomic(join(dir, f.path), f.text);
    else if (!existsSync(join(dir, f.path))) symlinkSync(f.link!, join(dir, f.path));
  }
  return undefined;
}
