// The worlds the crash campaign starts from, built once per command with the real particle binary
// (and the runtime's entry writer for the first, "installed" deployment, as test/host/cycle does):
// a sysroot, an ESP, and a deployment booted through a kernel command line. Trees are small (a few
// hundred files) with a fake kernel; later trees are copies of the first (same mtimes) so staging
// reuses the booted initramfs instead of running dracut.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deterministicBytes } from "../../host/lib/fixture.ts";
import { makeTinyTree, HOST_SYSTEMD_BOOT } from "../../host/install-helpers.ts";
import { particleOk, stageJson } from "../../host/lib/particle.ts";
import { writeDeploymentEntry } from "../../../runtime/src/bootloader/deploy-entry.ts";
import { installSystemdBoot } from "../../../runtime/src/bootloader/systemd-boot.ts";
import { readManifests } from "../../../runtime/src/deployments/read.ts";
import type { World } from "./invariants.ts";

export const ROOT_UUID = "0b5c7d2e-1111-4222-8333-944455556666";
export const KERNEL = "usr/lib/modules/6.12.0-fake/vmlinuz";
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 28 }).toString();

/** The arguments that make a command see deployment `id` as booted from `w`'s ESP. */
export const booted = (w: World, id: string): string[] =>
  ["--sysroot", w.sysroot, "--esp", w.esp!, "--cmdline", `root=UUID=${ROOT_UUID} rw particle.deploy=${id} particle.image=x`];

/** Tree A: an OS-like tiny tree with `files` data files of their own content, and some /etc. */
export function treeA(root: string, files: number): void {
  makeTinyTree(root, { kernelBytes: Buffer.alloc(300_000, 3) });
  for (let i = 0; i < files; i++) {
    const d = join(root, "usr/share/data", String(i % 10));
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}`), deterministicBytes(100 + (i * 37) % 5000, i + 1));
  }
  for (let i = 0; i < 20; i++) writeFileSync(join(root, "etc", `conf-${i}`), `setting ${i}\n`);
}

/** A variant of `base` (copied with its mtimes, so the initramfs inputs stay the same) with new data. */
export function variant(base: string, root: string, tag: number, files: number): void {
  sh("cp", ["-a", base, root]);
  for (let i = 0; i < files; i++) writeFileSync(join(root, "usr/share/data", String(i % 10), `f${i}`), deterministicBytes(100 + (i * 41) % 5000, tag * 100_000 + i));
  writeFileSync(join(root, "etc/os-release"), `ID=debian\nVERSION_ID=13.${tag}\n`);
}

/** A sysroot + ESP (systemd-boot, or GRUB's generated menu and env) with tree `first` staged and made the default. */
export function installedWorld(dir: string, first: string, o: { grub?: boolean; source?: string; stageArgs?: string[]; kernel?: string } = {}): World {
  const w: World = { dir, sysroot: join(dir, "sysroot"), esp: join(dir, "esp") };
  mkdirSync(w.sysroot, { recursive: true });
  mkdirSync(w.esp!, { recursive: true });
  mkdirSync(join(dir, "tmp"), { recursive: true });
  installSystemdBoot(w.esp!, HOST_SYSTEMD_BOOT);
  if (o.grub) particleOk(["grub-menu", "--write", "--esp", w.esp!]);
  const r = stageJson(o.source ?? `dir:${first}`, w.sysroot, o.stageArgs ?? []);
  const initrd = join(dir, "initrd-first");
  writeFileSync(initrd, deterministicBytes(200_000, 77));
  const m = readManifests(w.sysroot).find((x) => x.id === r.id)!;
  writeDeploymentEntry({ esp: w.esp!, manifest: m, rootUuid: ROOT_UUID, kernel: join(first, o.kernel ?? KERNEL), initrd, extraArgs: ["console=ttyS0"] });
  return w;
}

/** `particle stage` of `source` on the world booted into `bootedId`: a new deployment and its entry. */
export function stageBooted(w: World, bootedId: string, source: string, extra: string[] = []): string {
  return JSON.parse(particleOk(["stage", source, "--json", ...booted(w, bootedId), ...extra])).id;
}

/**
 * A Debian tree for `particle layer`: the guest's mmdebstrap tree without what layering never reads
 * (kernel modules, docs, locales), apt pointed at the local repository `repo` only (copied into the
 * tree at /opt/crash-repo). Returns the kernel's path in the tree.
 */
export function debianTree(base: string, root: string, repo: string): string {
  sh("cp", ["-a", base, root]);
  const kver = sh("ls", [join(root, "usr/lib/modules")]).trim().split("\n")[0]!;
  for (const p of [`usr/lib/modules/${kver}/kernel`, "usr/share/doc", "usr/share/locale", "usr/share/man", "usr/lib/firmware"]) sh("rm", ["-rf", join(root, p)]);
  sh("rm", ["-rf", join(root, "etc/apt/sources.list"), join(root, "etc/apt/sources.list.d")]);
  mkdirSync(join(root, "etc/apt/sources.list.d"), { recursive: true });
  writeFileSync(join(root, "etc/apt/sources.list.d/crash.list"), "deb [trusted=yes] file:/opt/crash-repo ./\n");
  sh("cp", ["-a", repo, join(root, "opt/crash-repo")]);
  return `boot/vmlinuz-${kver}`;
}
