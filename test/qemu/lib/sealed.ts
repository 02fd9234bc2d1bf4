// Sealed boot (issue 11) in QEMU: OVMF's Secure Boot build with the owner's keys enrolled, a disk
// from `particle install --sealed`, an update UKI from `particle seal`. Keys, the enrolled variable
// store, the installed disk and the update are cached, keyed by what they are built from.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cached, fileHash, hashOf } from "./cache.ts";
import { makeExt4 } from "./disk.ts";
import { guestTree, initramfs, sh, type GuestTree } from "./guest.ts";
import { OVMF_VARS } from "./ovmf.ts";
import { boot, KERNEL_ARGS, type BootOptions, type BootResult } from "./qemu.ts";
import { PARTICLE } from "./cycle.ts";

export const OVMF_SECBOOT_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/** Bump when the keys' recipe or the sealed install changes. */
const SEALED_VERSION = "2";
/** The strict-mode /var partition (`particle install --luks-var`): LUKS2's 16 MiB header and a small ext4. */
export const LUKS_VAR_SIZE = "256M";

/** `fn` with the ext4 image `img` mounted read-only (loop) at a temporary directory. */
export function withTreeImage<T>(img: string, fn: (mnt: string) => T): T {
  const mnt = mkdtempSync(join(tmpdir(), "particle-sealed-tree-"));
  try {
    sh("mount", ["-o", "ro,loop", img, mnt]);
    try {
      return fn(mnt);
    } finally {
      sh("umount", [mnt]);
    }
  } finally {
    rmdirSync(mnt);
  }
}
const DISK_SIZE = "4G";
export const V2_MARKER = "usr/share/particle-test/sealed-v2";
export const V2_TEXT = "Particle-OS sealed update v2\n";

/** The secure-boot firmware needs SMM on q35, and its variable store writable only from SMM. */
export function secureFirmwareArgs(vars: string): string[] {
  return [
    "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
    "-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_SECBOOT_CODE}`,
    "-drive", `if=pflash,format=raw,unit=1,file=${vars}`,
  ];
}

export interface SealedInputs {
  g: GuestTree;
  initrd: string;
  keys: string;
  /** Pristine sealed install of the guest tree as version 1 (copy before booting). */
  installed: string;
  /** v2: the tree plus V2_MARKER as an ext4 image (the guest stages it from /dev/vdc), and its signed UKI. */
  treeV2: string;
  ukiV2: string;
  sealV2: { imageDigest: string; bytes: number; cmdline: string };
  installSeconds: number | null;
}

function particle(args: string[]): string {
  const r = spawnSync(PARTICLE, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`particle ${args.join(" ")} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The owner's keys: made once and kept, so the enrolled variable store stays valid. */
export function ownerKeys(): Promise<string> {
  return cached(`sealed-keys-${hashOf("keys", SEALED_VERSION)}`, async (dir) => {
    particle(["keys", "create", dir, "--name", "Particle-OS test owner"]);
  });
}

const kargs = () => KERNEL_ARGS.split(" ").flatMap((a) => ["--karg", a]);

export async function prepareSealed(log: (m: string) => void = () => {}): Promise<SealedInputs> {
  const g = await guestTree();
  const initrd = await initramfs(g);
  const keys = await ownerKeys();
  const keyHash = await fileHash(join(keys, "db.crt"));
  const base = hashOf(SEALED_VERSION, g.key, initrd, await fileHash(PARTICLE), keyHash);
  let installSeconds: number | null = null;
  const installed = await cached(`disk-sealed-${hashOf(base, DISK_SIZE)}.img`, async (tmp) => {
    const t = Date.now();
    const out = particle(["install", "--to-disk", tmp, "--source", `dir:${g.dir}`, "--size", DISK_SIZE, "--initramfs", initrd,
      "--sealed", keys, "--luks-var", LUKS_VAR_SIZE, "--version", "1", "--json", ...kargs()]);
    installSeconds = (Date.now() - t) / 1000;
    log(`sealed install: ${out.trim()} in ${installSeconds.toFixed(0)} s`);
  });
  // v2 as the guest sees it: an ext4 image of the tree plus V2_MARKER, staged inside the guest
  // from /dev/vdc. Its UKI is sealed from the same image mounted here, read-only: the digest then
  // covers exactly the metadata the guest reads (mkfs sets the root directory's times), and the
  // guest's `particle stage` must compute the digest `particle seal` sealed. One cache entry for
  // the image and its UKI, so a rebuilt image never meets an old UKI.
  const v2 = await cached(`sealed-v2-${hashOf(base, V2_MARKER, V2_TEXT, "ext4")}`, async (dir) => {
    mkdirSync(dir);
    const tree = join(dir, "tree");
    sh("cp", ["-a", "--reflink=auto", g.dir, tree]);
    writeFileSync(join(tree, V2_MARKER), V2_TEXT);
    makeExt4(join(dir, "tree.img"), tree, 64);
    sh("rm", ["-rf", tree]);
    const t = Date.now();
    const out = withTreeImage(join(dir, "tree.img"), (mnt) =>
      particle(["seal", `dir:${mnt}`, "--keys", keys, "--initramfs", initrd, "--version", "2", "--out", join(dir, "v2.efi"), "--json", ...kargs()]));
    writeFileSync(join(dir, "seal.json"), out.trim().split("\n").pop()!);
    log(`particle seal v2: ${((Date.now() - t) / 1000).toFixed(0)} s`);
  });
  const ukiDir = v2;
  const sealV2 = JSON.parse(readFileSync(join(ukiDir, "seal.json"), "utf8"));
  return { g, initrd, keys, installed, treeV2: join(v2, "tree.img"), ukiV2: join(ukiDir, "v2.efi"), sealV2, installSeconds };
}

/**
 * The firmware's variable store with the owner's keys enrolled the way a real machine gets them:
 * blank variables (setup mode), one boot of the sealed disk, systemd-boot's `secure-boot-enroll
 * force` enrolls loader/keys/auto and resets the machine (QEMU runs with -no-reboot, so it exits).
 * Cached per keys: enrollment is tested once, and every later run starts from its result.
 */
export async function enrolledVars(s: SealedInputs, log: (m: string) => void): Promise<{ vars: string; enrollment: BootResult | null }> {
  let enrollment: BootResult | null = null;
  const vars = await cached(`vars-sealed-${hashOf(SEALED_VERSION, await fileHash(join(s.keys, "PK.crt")), await fileHash(OVMF_SECBOOT_CODE))}.fd`, async (tmp) => {
    const work = mkdtempSync(join(tmpdir(), "particle-enroll-"));
    try {
      const disk = join(work, "disk.img");
      sh("cp", ["--sparse=always", s.installed, disk]);
      copyFileSync(OVMF_VARS, tmp);
      enrollment = await boot({ name: "sealed-0-enroll", disks: [disk], machineArgs: secureFirmwareArgs(tmp), timeoutMs: 300_000, until: /@@PARTICLE-AGENT-READY|Run \/init as init process/ });
      log(`enrollment boot: ${(enrollment.wallMs / 1000).toFixed(0)} s (console log: ${enrollment.logFile})`);
      if (enrollment.matched) throw new Error(`enrollment: the machine booted on instead of enrolling and resetting (console log: ${enrollment.logFile})`);
      if (enrollment.timedOut) throw new Error(`enrollment: timed out (console log: ${enrollment.logFile})`);
    } finally {
      sh("rm", ["-rf", work]);
    }
  });
  return { vars, enrollment };
}

/** A working copy of the sealed disk and of the enrolled variables. */
export function machine(s: SealedInputs, vars: string, dir: string): { disk: string; vars: string } {
  const disk = join(dir, "sealed.img");
  sh("cp", ["--sparse=always", s.installed, disk]);
  copyFileSync(vars, join(dir, "sealed.vars.fd"));
  return { disk, vars: join(dir, "sealed.vars.fd") };
}

/**
 * A TPM 2.0 for the guest: swtpm on a unix socket, its state in `stateDir` (kept across boots, as
 * a machine's TPM is), attached as QEMU's tpm-tis device. Stopped when `fn` is done.
 */
export async function withSwtpm<T>(stateDir: string, fn: (args: string[]) => Promise<T>): Promise<T> {
  mkdirSync(stateDir, { recursive: true });
  const sock = join(stateDir, "swtpm.sock");
  rmSync(sock, { force: true });
  const p = spawn("swtpm", ["socket", "--tpm2", "--tpmstate", `dir=${stateDir}`, "--ctrl", `type=unixio,path=${sock}`, "--log", `file=${join(stateDir, "swtpm.log")}`], { stdio: "ignore" });
  try {
    for (let i = 0; i < 100 && !existsSync(sock); i++) {
      if (p.exitCode !== null) throw new Error(`swtpm exited (${p.exitCode}); see ${join(stateDir, "swtpm.log")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!existsSync(sock)) throw new Error(`swtpm: no socket ${sock} after 5 s`);
    return await fn(["-chardev", `socket,id=chrtpm,path=${sock}`, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"]);
  } finally {
    p.kill("SIGTERM");
  }
}

export function bootSealed(m: { disk: string; vars: string }, o: Omit<BootOptions, "disks" | "machineArgs"> & { tpm?: string }): Promise<BootResult> {
  const { tpm, ...rest } = o;
  if (tpm === undefined) return boot({ ...rest, disks: [m.disk], machineArgs: secureFirmwareArgs(m.vars) });
  return withSwtpm(tpm, (args) => boot({ ...rest, disks: [m.disk], machineArgs: [...secureFirmwareArgs(m.vars), ...args] }));
}

const MTOOLS = { ...process.env, MTOOLS_SKIP_CHECK: "1" };
function mtools(cmd: string, args: string[]): string {
  for (let i = 0; ; i++) {
    const r = spawnSync(cmd, args, { env: MTOOLS, encoding: "utf8" });
    if (r.status === 0) return r.stdout;
    // A partition node that is not ready yet right after the loop device's rescan.
    if (i < 20 && /Could not get geometry/.test(r.stderr)) { spawnSync("sleep", ["0.5"]); continue; }
    throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  }
}

/** The disk's partitions on a loop device: the ESP (vfat, written with mtools, as install does)
 *  and the root, mounted. Everything is undone when `fn` returns. */
export function withDisk<T>(disk: string, fn: (d: { esp: string; root: string }) => T): T {
  return withPartitions(disk, (p) => {
    const root = mkdtempSync(join(tmpdir(), "particle-sealed-root-"));
    try {
      sh("mount", [p.root, root]);
      try {
        return fn({ esp: p.esp, root });
      } finally {
        sh("umount", [root]);
      }
    } finally {
      rmdirSync(root);
    }
  });
}

/** The disk's partition devices (ESP, root), on a loop device detached afterwards. */
export function withPartitions<T>(disk: string, fn: (p: { esp: string; root: string; var: string }) => T): T {
  const loop = sh("losetup", ["-P", "--show", "-f", disk]).trim();
  try {
    // As install does: without udev the attach's own partition scan shows no partitions here.
    sh("partx", ["--update", loop]);
    for (let i = 0; i < 100 && !(existsSync(`${loop}p1`) && existsSync(`${loop}p2`) && existsSync(`${loop}p3`)); i++) spawnSync("sleep", ["0.1"]);
    return fn({ esp: `${loop}p1`, root: `${loop}p2`, var: `${loop}p3` });
  } finally {
    sh("losetup", ["-d", loop]);
  }
}

export const esp = {
  ls: (dev: string, dir: string) => mtools("mdir", ["-i", dev, "-b", `::/${dir}`]).split("\n").map((l) => l.trim().replace(/^::\/?/, "").split("/").pop()!).filter(Boolean),
  put: (dev: string, src: string, dest: string) => mtools("mcopy", ["-i", dev, "-o", "-D", "o", src, `::/${dest}`]),
  get: (dev: string, src: string, dest: string) => mtools("mcopy", ["-i", dev, "-o", "-D", "o", `::/${src}`, dest]),
  rm: (dev: string, path: string) => mtools("mdel", ["-i", dev, `::/${path}`]),
  mv: (dev: string, from: string, to: string) => mtools("mren", ["-i", dev, `::/${from}`, `::/${to}`]),
};

/** `efivar`-style reading of a boolean UEFI global variable (4 attribute bytes, then the value). */
export const efiFlag = (name: string) => `od -An -t u1 /sys/firmware/efi/efivars/${name}-${EFI_GLOBAL} | awk '{print $NF}'`;
