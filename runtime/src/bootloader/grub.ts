// GRUB on the ESP: the system half of grub-menu.ts and grub-env.ts. An ESP is in GRUB mode when it
// holds grub/particle.cfg (written by `particle install --bootloader grub` or by
// /etc/grub.d/15_particle through `particle grub-menu`); then every change to loader/entries/ is
// followed by a rewrite of that menu. Both files are written atomically (temp, fsync, rename,
// fsync dir). Ordering: a new default's counters are written before the menu that makes it the
// default; a rollback's menu is written before the counters are dropped. Either way a power cut in
// between leaves a counted default or an uncounted old one, never an uncounted new default.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { getKey } from "../bls/entry.ts";
import { fsyncDir, renameAtomic, writeFileAtomic } from "../system/atomic.ts";
import { run } from "../system/exec.ts";
import { ENTRIES_DIR, particleEntries, readEntries, type LoadedEntry } from "./entries.ts";
import { encodeGrubEnv, parseGrubEnv, startCounting, stopCounting, type GrubEnv } from "./grub-env.ts";
import { ENV_FILE, GRUB_DIR, GRUB_TRIES, LOADER_CFG, MENU_FILE, renderGrubMenu, renderLoaderCfg, type MenuEntry } from "./grub-menu.ts";
import { checkpoint } from "../system/die-at.ts";

export const usesGrub = (esp: string): boolean => existsSync(join(esp, MENU_FILE));

/** Pure: a loaded BLS entry as a menu entry (undefined when it lacks a kernel or deployment). */
export function menuEntryOf(e: LoadedEntry): MenuEntry | undefined {
  if (!e.deployId || !e.linux) return undefined;
  return { deployId: e.deployId, title: getKey(e.entry, "title") ?? `Particle-OS deployment ${e.deployId}`, linux: e.linux, initrd: e.initrd, options: e.options };
}

/** The menu for the entries now on the ESP, in the order systemd-boot would use (newest generation first). */
export function menuForEsp(esp: string, timeout?: number): string {
  const entries = particleEntries(readEntries(esp)).flatMap((e) => menuEntryOf(e) ?? []);
  return renderGrubMenu({ entries, timeout });
}

export function readGrubEnv(esp: string): GrubEnv {
  const p = join(esp, ENV_FILE);
  return existsSync(p) ? parseGrubEnv(readFileSync(p)) : new Map();
}

export function writeGrubEnv(esp: string, env: GrubEnv): void {
  mkdirSync(join(esp, GRUB_DIR), { recursive: true });
  writeFileAtomic(join(esp, ENV_FILE), encodeGrubEnv(env));
}

export function writeGrubMenu(esp: string): void {
  mkdirSync(join(esp, GRUB_DIR), { recursive: true });
  writeFileAtomic(join(esp, MENU_FILE), menuForEsp(esp));
}

export type Counting = { start: string } | "stop" | undefined;

/**
 * After loader/entries/ changed: on a GRUB ESP, rewrite the menu (and the counters when the default
 * changed). No-op on a systemd-boot ESP. Returns whether the ESP uses GRUB.
 */
export function syncGrub(esp: string, counting?: Counting): boolean {
  if (!usesGrub(esp)) return false;
  if (counting && counting !== "stop") writeGrubEnv(esp, startCounting(readGrubEnv(esp), counting.start, GRUB_TRIES));
  checkpoint("grub:env-before-menu");
  writeGrubMenu(esp);
  checkpoint("grub:menu-written");
  if (counting === "stop") writeGrubEnv(esp, stopCounting(readGrubEnv(esp)));
  return true;
}

/** Opts an ESP into GRUB mode (15_particle on a grub-mkconfig system): the env block and the menu. */
export function enableGrub(esp: string): void {
  if (!existsSync(join(esp, ENV_FILE))) writeGrubEnv(esp, new Map());
  writeGrubMenu(esp);
}

export const GRUB_MODULE_DIR = "usr/lib/grub/x86_64-efi";
export const HOST_GRUB_MODULES = `/${GRUB_MODULE_DIR}`;
/**
 * Built into the EFI image, so the ESP needs no module directory: the partition and file system
 * GRUB reads (GPT, FAT), the menu (normal, test, echo, configfile for `source`), the counters
 * (loadenv), the kernel (linux), search for 15_particle's snippet, video for the kernel's EFI
 * framebuffer, and the serial terminal for headless machines.
 */
export const GRUB_MODULES = [
  "part_gpt", "part_msdos", "fat", "normal", "configfile", "test", "echo", "loadenv", "linux",
  "search", "search_fs_file", "search_fs_uuid", "search_label", "all_video", "efi_gop", "serial",
  "terminal", "sleep", "halt", "reboot", "ls", "cat",
];

/** Where to take GRUB's modules from: the tree being installed first (its GRUB), then (with
 *  `host`) the host's grub-efi-amd64-bin. */
export function findGrubModules(treeRoots: readonly string[], host = true): string | undefined {
  for (const r of [...treeRoots.map((t) => join(t, GRUB_MODULE_DIR)), ...(host ? [HOST_GRUB_MODULES] : [])]) {
    if (existsSync(join(r, "normal.mod"))) return r;
  }
  return undefined;
}

/**
 * Installs GRUB EFI into an ESP directory at the removable-media path, as
 * `grub-install --removable --no-nvram` does, by calling grub-mkimage (which grub-install runs)
 * directly: no probing of the host's disks, and every module the menu needs is built in. $prefix
 * is /grub on the boot partition, where grub.cfg sources the generated particle.cfg.
 */
export async function installGrub(esp: string, moduleDir: string): Promise<void> {
  const efiDir = join(esp, "EFI/BOOT");
  mkdirSync(efiDir, { recursive: true });
  mkdirSync(join(esp, GRUB_DIR), { recursive: true });
  const tmp = join(efiDir, `.BOOTX64.EFI.tmp-${process.pid}`);
  await run("grub-mkimage", ["--directory", moduleDir, "--format", "x86_64-efi", "--prefix", `/${GRUB_DIR}`, "--output", tmp, ...GRUB_MODULES]);
  renameAtomic(tmp, join(efiDir, "BOOTX64.EFI"));
  writeFileAtomic(join(esp, LOADER_CFG), renderLoaderCfg());
  // status, rollback and stage find the ESP by loader/; the entries stay BLS files there.
  mkdirSync(join(esp, ENTRIES_DIR), { recursive: true });
  enableGrub(esp);
  fsyncDir(esp);
}
