// Where the installed system mounts its ESP, and the mount unit that does it. The root is a
// read-only image, so the mount point must already exist in the tree; systemd's own search order
// (/efi, /boot/efi, /boot) picks the first that does.
import { existsSync } from "node:fs";
import { join } from "node:path";

export const ESP_MOUNT_POINTS = ["/efi", "/boot/efi", "/boot"];

export function espMountPoint(tree: string): string {
  const p = ESP_MOUNT_POINTS.find((d) => existsSync(join(tree, d)));
  if (!p) throw new Error(`the tree has none of ${ESP_MOUNT_POINTS.join(", ")} to mount the ESP on`);
  return p;
}

/** systemd's unit name for a mount point: /boot/efi → boot-efi.mount (our paths need no escaping). */
export const mountUnitName = (where: string): string => `${where.replace(/^\//, "").replaceAll("/", "-")}.mount`;

export function espMountUnit(where: string, espUuid: string, what = `/dev/disk/by-uuid/${espUuid}`, by = "particle install"): { name: string; text: string } {
  return {
    name: mountUnitName(where),
    text: [
      `# Written by ${by}: the ESP holds the boot entries that particle and`,
      "# systemd-bless-boot update.",
      "[Unit]",
      "Description=EFI System Partition",
      "",
      "[Mount]",
      `What=${what}`,
      `Where=${where}`,
      "Type=vfat",
      // Not nofail (as Debian's own /boot/efi line): local-fs.target then waits for the ESP, so
      // status, rollback, systemd-bless-boot and particle-finalize find the entries.
      "Options=umask=0077,shortname=winnt",
      "",
    ].join("\n"),
  };
}
