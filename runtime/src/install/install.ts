// `particle install --to-disk`: the order of steps. Each step lives in its own module; this file
// only sequences them and undoes mounts and loop devices on every path out.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, closeSync, openSync, copyFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FormatRequest } from "../kernel/format-choice.ts";
import { FORMAT_PREFERENCE } from "../kernel/capabilities.ts";
import { bootKernel } from "../kernel/probe.ts";
import { resolveFormat } from "../kernel/resolve.ts";
import { dirView } from "../kernel/tree-view.ts";
import { run } from "../system/exec.ts";
import { MNT_DETACH, mount, umount, syncfsPath } from "../system/libc.ts";
import { checkSpace } from "../deployments/space.ts";
import { copyToVfat, treeSize } from "./vfat.ts";
import { writeFileAtomic } from "../system/atomic.ts";
import { findSystemdBootEfi, installSystemdBoot } from "../bootloader/systemd-boot.ts";
import { findGrubModules, HOST_GRUB_MODULES, installGrub } from "../bootloader/grub.ts";
import { writeDeploymentEntry } from "../bootloader/deploy-entry.ts";
import { readManifests } from "../deployments/read.ts";
import { upperDir } from "../deployments/etc-carry.ts";
import { withDeploymentMounted } from "../deployments/mounted.ts";
import { ESP_SIZE, minimumDiskBytes, sizeError } from "./disk.ts";
import { assertNotInUse, inspectTarget, makeFilesystems, partition } from "./block.ts";
import { missingParticleFiles, treeCheckError } from "./tree-check.ts";
import { stageInto } from "./stage-hook.ts";
import { trackedReference } from "../oci/track-as.ts";
import type { Policy } from "../oci/skopeo.ts";
import type { ProgressOut } from "../oci/progress.ts";
import { buildInitramfs, pickKernel } from "./initramfs.ts";
import { clearStaleInstalls, recordImage, recordLoop, workDirPrefix } from "./stale.ts";
import { espMountUnit, espMountPoint } from "./esp-mount.ts";
import { checkpoint } from "../system/die-at.ts";
import { sealTree, type SealResult } from "../seal/build.ts";
import { signEfi } from "../seal/uki.ts";
import { ukiFileName } from "../seal/plan.ts";
import { SEALED_LOADER_CONF, sealingKeys, writeSealedEsp } from "./sealed-esp.ts";
import { sealInstalledStore, type InstallSeal } from "./seal-store.ts";

export const DEFAULT_SIZE = 8 * 1024 ** 3;
/** What a fresh FAT32 ESP of ESP_SIZE holds, give or take: FATs and reserved sectors take ~1%. */
const ESP_USABLE = Math.floor(ESP_SIZE * 0.98);
export const HOST_SYSTEMD_BOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/**
 * --luks-var and particle.var=luks go together, on a sealed install whose keys can sign the TPM2
 * policy: a UKI without .pcrsig could never unlock the volume, and one without the karg leaves
 * the partition unused. Checked before the disk is touched.
 */
export function checkLuksVar(o: Pick<InstallOptions, "luksVar" | "kargs" | "sealed">, hasPcrKey: boolean): void {
  const karg = o.kargs.includes("particle.var=luks");
  if (karg && o.luksVar === undefined) throw new Error("--karg particle.var=luks needs --luks-var SIZE (the partition it unlocks)");
  if (o.luksVar === undefined) return;
  if (o.sealed === undefined) throw new Error("--luks-var needs --sealed KEYDIR: the TPM2 releases the key only to UKIs the owner signed");
  if (!hasPcrKey) throw new Error(`--luks-var: ${o.sealed} has no tpm2-pcr-private.pem to sign the TPM2 policy with (keys made by an older particle keys create; make new ones)`);
}

export interface InstallOptions {
  target: string;
  source: string;
  /** Size of a disk image file to create (or grow to); ignored for block devices. */
  size?: number;
  /** "auto": the newest format the tree's own kernel can boot. */
  format: FormatRequest;
  version?: string;
  /** A ready initramfs to use instead of running dracut in the deployment. */
  initramfs?: string;
  kargs: string[];
  /** Default systemd-boot; grub for GRUB EFI with particle's generated menu and grubenv counting. */
  bootloader?: "systemd-boot" | "grub";
  /** Key directory (particle keys create): install sealed, a signed UKI instead of a BLS entry. */
  sealed?: string;
  /** Bytes for a /var partition that particle-boot encrypts on the first boot of a UKI sealed with
   *  particle.var=luks (strict mode). Sealed installs only: the TPM2 policy is signed per UKI. */
  luksVar?: number;
  /** Image sources: the signature policy skopeo applies (default: the system's policy.json). */
  policy?: Policy;
  /** Image sources: the reference the installed system's upgrades follow, when it reaches the image
   *  by another name than the installer (bootc install's --target-imgref). */
  targetImgref?: string;
  /** Image sources: where the fetch progress and the warning of an unverified image go (default: the warning to the log, no progress). */
  progressOut?: ProgressOut;
  log: (m: string) => void;
}

export interface InstallResult {
  target: string;
  deployment: string;
  imageDigest: string;
  rootUuid: string;
  espUuid: string;
  entry: string;
  kernel: string;
  /** When the store got fs-verity: now (the installing kernel has it) or on the first boot. */
  verity: InstallSeal["kind"];
}

/** A directory source (dir:PATH or a plain directory), which can be checked before the disk is touched. */
export function sourceDir(source: string): string | undefined {
  const p = source.startsWith("dir:") ? source.slice(4) : source;
  return !/^[a-z]+:/.test(source) || source.startsWith("dir:") ? (existsSync(p) && statSync(p).isDirectory() ? p : undefined) : undefined;
}

async function treeBytes(dir: string): Promise<number> {
  return Number((await run("du", ["-sb", "--apparent-size", dir])).split(/\s/)[0]);
}

export async function install(o: InstallOptions): Promise<InstallResult> {
  // Staging would refuse it too, but only once the disk is partitioned.
  const trackAs = o.targetImgref === undefined ? undefined : trackedReference(o.source, o.targetImgref);
  const dir = sourceDir(o.source);
  let format: FormatRequest = o.format;
  if (dir) {
    const missing = missingParticleFiles(dir);
    if (missing.length) throw treeCheckError(o.source, missing);
    // Before the disk is touched: a format the tree's kernel cannot boot is refused here.
    format = resolveFormat(o.format, dirView(dir), bootKernel(dirView(dir)), FORMAT_PREFERENCE, o.log);
  }
  if (o.initramfs && !existsSync(o.initramfs)) throw new Error(`--initramfs ${o.initramfs}: no such file`);
  const keys = o.sealed === undefined ? undefined : sealingKeys(o.sealed, o.bootloader);
  checkLuksVar(o, keys?.pcrKey !== undefined);

  for (const r of await clearStaleInstalls(tmpdir())) o.log(`removed what a killed install left: ${r}`);
  const target = inspectTarget(o.target);
  await assertNotInUse(target);
  const size = target.kind === "block" ? target.size : Math.max(target.size, o.size ?? (target.size ? 0 : DEFAULT_SIZE));
  const needed = minimumDiskBytes(dir ? await treeBytes(dir) : undefined, o.luksVar ?? 0);
  if (size < needed) throw sizeError(o.target, size, needed);

  const created = target.kind === "file" && target.size === 0;
  if (target.kind === "file") {
    if (created) closeSync(openSync(o.target, "wx"));
    truncateSync(o.target, size); // sparse
  }
  const work = mkdtempSync(join(tmpdir(), workDirPrefix()));
  const undo: Array<() => Promise<void> | void> = [];
  let ok = false;
  try {
    o.log(`partitioning ${o.target} (${(size / 1024 ** 3).toFixed(1)} GiB)`);
    if (target.kind === "file") recordImage(work, o.target);
    const disk = await partition({ ...target, size }, (loop) => recordLoop(work, loop, o.target), o.luksVar ?? 0);
    undo.push(() => disk.detach());
    checkpoint("install:partitioned");
    const { espUuid, rootUuid } = await makeFilesystems(disk);

    const root = join(work, "root");
    // The ESP is assembled here and copied onto the vfat partition with mtools at the end.
    const esp = join(work, "esp");
    mkdirSync(root);
    mkdirSync(esp);
    mount(disk.root, root, "ext4", 0, null);
    undo.push(() => umount(root, MNT_DETACH));
    checkpoint("install:root-mounted");

    o.log(`staging ${o.source}`);
    const staged = await stageInto(root, { source: o.source, format, version: o.version, policy: o.policy, trackAs, progressOut: o.progressOut, log: o.log });
    checkpoint("install:staged");
    const manifest = readManifests(root).find((m) => m.id === staged.id);
    if (!manifest) throw new Error(`staging reported deployment ${staged.id} but ${root}/particle/deploy has no manifest for it`);
    const sealing = sealInstalledStore(root, manifest);
    o.log(sealing.kind === "sealed"
      ? `fs-verity enabled now, so the first boot only measures: the image${sealing.objects ? ` and ${sealing.objects} objects` : ""}`
      : `fs-verity left to the first boot: ${sealing.reason}`);

    const kernelCopy = join(work, "vmlinuz");
    const initrdCopy = join(work, "initrd.img");
    let efi: string | undefined;
    let grubModules: string | undefined;
    const grub = o.bootloader === "grub";
    let espWhere: string;
    let uki: SealResult | undefined;
    const mnt = join(work, "deploy");
    mkdirSync(mnt);
    const kver = await withDeploymentMounted(root, staged.id, mnt, async (tree) => {
      const missing = missingParticleFiles(tree);
      if (missing.length) throw treeCheckError(o.source, missing);
      const k = pickKernel(tree, manifest.kernel);
      copyFileSync(k.path, kernelCopy);
      if (o.initramfs) copyFileSync(o.initramfs, initrdCopy);
      else await buildInitramfs(tree, k.kver, initrdCopy, o.log);
      // Copied out: the tree is unmounted when this callback returns.
      const inTree = findSystemdBootEfi([tree]);
      if (inTree && !grub) copyFileSync(inTree, (efi = join(work, "systemd-bootx64.efi")));
      const treeGrub = grub ? findGrubModules([tree], false) : undefined;
      if (treeGrub) {
        grubModules = join(work, "grub-modules");
        cpSync(treeGrub, grubModules, { recursive: true });
      }
      espWhere = espMountPoint(tree);
      if (keys) {
        o.log("sealing: building and signing the UKI");
        uki = await sealTree({ tree, imageDigest: staged.imageDigest, initrd: initrdCopy, keys, version: o.version ?? "1", kargs: o.kargs, out: join(work, "uki.efi") });
      }
      return k.kver;
    }, o.log);
    if (grub) {
      grubModules ??= findGrubModules([]);
      if (!grubModules) throw new Error(`GRUB's x86_64-efi modules not found in the tree nor at ${HOST_GRUB_MODULES} (apt-get install grub-efi-amd64-bin)`);
      o.log(`installing GRUB EFI (modules from ${grubModules === join(work, "grub-modules") ? "the tree" : grubModules})`);
      await installGrub(esp, grubModules);
    } else {
      efi ??= existsSync(HOST_SYSTEMD_BOOT) ? HOST_SYSTEMD_BOOT : undefined;
      if (!efi) throw new Error(`systemd-bootx64.efi not found in the tree nor at ${HOST_SYSTEMD_BOOT} (apt-get install systemd-boot-efi)`);
      o.log(`installing systemd-boot from ${efi}`);
      if (keys) {
        const signed = join(work, "systemd-bootx64.signed.efi");
        await signEfi(keys, efi, signed);
        efi = signed;
      }
      installSystemdBoot(esp, efi, keys ? SEALED_LOADER_CONF : undefined);
    }
    // The installed system mounts its ESP so status, rollback and systemd-bless-boot can reach the
    // entries. A unit in the deployment's /etc upper is a local change: it carries over to updates.
    const unit = espMountUnit(espWhere!, espUuid);
    const sysd = join(upperDir(root, staged.id), "systemd/system");
    mkdirSync(join(sysd, "local-fs.target.wants"), { recursive: true });
    writeFileAtomic(join(sysd, unit.name), unit.text);
    symlinkSync(`../${unit.name}`, join(sysd, "local-fs.target.wants", unit.name));

    const espBytes = statSync(kernelCopy).size + statSync(initrdCopy).size + treeSize(esp);
    const full = checkSpace([{ what: `ESP ${disk.esp}`, needed: espBytes, free: ESP_USABLE }]);
    if (full) throw full;
    const entry = keys && uki
      ? { file: writeSealedEsp(esp, keys, uki.out, ukiFileName(o.version ?? "1", staged.imageDigest)) }
      : writeDeploymentEntry({ esp, manifest, rootUuid, kernel: kernelCopy, initrd: initrdCopy, extraArgs: o.kargs, freeBytes: () => ESP_USABLE });
    o.log(`writing the ESP (${(espBytes / 1048576).toFixed(1)} MiB)`);
    checkpoint("install:esp-assembled");
    await copyToVfat(esp, disk.esp);
    checkpoint("install:esp-written");
    syncfsPath(root);
    ok = true;
    return { target: o.target, deployment: staged.id, imageDigest: staged.imageDigest, rootUuid, espUuid, entry: entry.file, kernel: kver, verity: sealing.kind };
  } finally {
    for (const u of undo.reverse()) {
      try { await u(); } catch (e) { o.log(`warning: cleanup: ${(e as Error).message}`); }
    }
    // Never recurse into a mount that could not be undone: that would be the new root's contents.
    if (readFileSync("/proc/self/mountinfo", "utf8").includes(` ${work}/`)) o.log(`warning: ${work} still has mounts; left in place`);
    else rmSync(work, { recursive: true, force: true });
    if (!ok && created) rmSync(o.target, { force: true });
  }
}
