// The Debian guests (trixie by default; bookworm for the older-kernel scenario): a base tree from mmdebstrap (cached), a copy with Particle-OS installed by
// `make install` (cached per build of dist/ and the dracut module), and its initramfs built by the
// tree's own dracut in a chroot (cached per tree and dracut options).
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cached, fileHash, hashOf } from "./cache.ts";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const AGENT_DIR = join(REPO, "test/guest/agent");

/** The suite every QEMU file boots unless it names another (bookworm.test.ts: kernel 6.1). */
export const SUITE = "trixie";
export type Suite = "trixie" | "bookworm";
export const MIRROR = "http://deb.debian.org/debian";
/** zstd inside the tree, or dracut silently falls back to gzip; systemd-boot-efi and dosfstools for
 *  the install-to-disk tests of later issues (cheap now, a second 2-minute build later). */
const PACKAGES = [
  "linux-image-amd64", "systemd", "systemd-sysv", "dracut", "erofs-utils", "fsverity", "e2fsprogs",
  "udev", "kmod", "zstd", "systemd-boot-efi", "dosfstools", "fdisk", "cpio",
  // binutils: dracut strips ELF files when strip exists (as on Ubuntu, where it is recommended),
  // which is what the module must survive.
  "binutils",
  // systemd-boot ships systemd-bless-boot and its generator: without them no entry is ever marked
  // good and boot counting (the +3 entries of `particle install`) cannot work (issue 4).
  "systemd-boot",
];
/**
 * Trixie only (the sealed tests' guests): strict sealed mode's /var on LUKS2 unlocked by the TPM
 * (issue 11). cryptsetup formats it on the first boot, systemd-cryptsetup/-cryptenroll and the
 * TSS2 libraries (tpm2-tools pulls them, and makes dracut's tpm2-tss module available) unlock it.
 * bookworm names them differently (no t64, systemd-cryptsetup inside systemd) and needs none.
 */
const LUKS_PACKAGES = ["cryptsetup-bin", "systemd-cryptsetup", "tpm2-tools", "libtss2-tcti-device0t64"];
export const packagesFor = (suite: Suite): string[] => (suite === "trixie" ? [...PACKAGES, ...LUKS_PACKAGES] : PACKAGES);
/** Bump when the base tree's build steps change. */
const BASE_VERSION = "2";
/** Bump when the test additions change. */
const TREE_VERSION = "7";

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): string {
  const env = opts.env ? { ...process.env, ...opts.env } : process.env;
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env, encoding: "utf8", maxBuffer: 256 << 20 });
  if (r.status !== 0) {
    const err = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-30).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status ?? r.signal}):\n${err}`);
  }
  return r.stdout;
}

function agentFiles(): Record<string, Buffer> {
  return Object.fromEntries(readdirSync(AGENT_DIR).sort().map((f) => [f, readFileSync(join(AGENT_DIR, f))]));
}

/** 64 KiB of fixed pseudo-random bytes: the file the corruption test breaks (several blocks, never
 *  inline, read by nothing during boot). */
export function canaryContent(): Buffer {
  const out: Buffer[] = [];
  let h = Buffer.from("particle-canary");
  while (out.length * 32 < 65536) out.push((h = createHash("sha256").update(h).digest()));
  return Buffer.concat(out);
}
export const CANARY_PATH = "usr/share/particle-test/canary";

/** Base tree of `suite`, straight from mmdebstrap: ~3 min to build, then cached. */
export async function guestBase(suite: Suite = SUITE): Promise<string> {
  const packages = packagesFor(suite);
  const key = hashOf(BASE_VERSION, suite, MIRROR, packages.join(","));
  return cached(`guest-base-${key}`, async (dir) => {
    sh("mmdebstrap", [
      "--variant=apt", "--quiet", `--include=${packages.join(",")}`,
      // Empty root password, for logging in on the serial console when debugging.
      `--customize-hook=sed -i 's/^root:[^:]*:/root::/' "$1"/etc/shadow`,
      // The kernel postinst's initramfs is not ours; the .debs (120 MB) would be staged and sealed.
      `--customize-hook=rm -rf "$1"/boot/initrd.img-* "$1"/var/lib/apt/lists/* "$1"/tmp/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb`,
      suite, dir, MIRROR,
      // INITRD=No: the kernel's postinst would spend a minute on an initramfs that is deleted anyway.
    ], { env: { INITRD: "No" } });
  });
}

/** Test additions to a tree: the agent, a hostname, /sysroot, the canary file. */
function addTestFiles(dir: string): void {
  for (const [f, data] of Object.entries(agentFiles())) {
    const dest = f.endsWith(".service") ? join(dir, "etc/systemd/system", f) : join(dir, "usr/local/sbin", f);
    writeFileSync(dest, data);
    chmodSync(dest, f.endsWith(".service") ? 0o644 : 0o755);
  }
  mkdirSync(join(dir, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
  sh("ln", ["-sf", "/etc/systemd/system/particle-test-agent.service", join(dir, "etc/systemd/system/multi-user.target.wants/")]);
  writeFileSync(join(dir, "etc/hostname"), "particle-guest\n");
  // The physical root is moved here under a deployment's root; an immutable image cannot mkdir it.
  mkdirSync(join(dir, "sysroot"), { recursive: true });
  // The ESP's mount point: without /efi, systemd's gpt-auto/bootctl logic (and particle install's
  // fstab) would mount the ESP on /boot, where the Debian kernels live (issue 4).
  mkdirSync(join(dir, "efi"), { recursive: true });
  mkdirSync(dirname(join(dir, CANARY_PATH)), { recursive: true });
  writeFileSync(join(dir, CANARY_PATH), canaryContent());
  // Boot-time work that costs tens of seconds under TCG and that these tests do not need:
  // dracut-shutdown unpacks /boot's initramfs into /run (the guest has none there).
  sh("ln", ["-sf", "/dev/null", join(dir, "etc/systemd/system/dracut-shutdown.service")]);
  // ConditionNeedsUpdate units (ldconfig, journal catalog, …) on every first boot of a fresh image.
  for (const f of ["etc/.updated", "var/.updated"]) writeFileSync(join(dir, f), "");
  for (const unit of TEST_MASKED_UNITS) sh("ln", ["-sf", "/dev/null", join(dir, "etc/systemd/system", unit)]);
  mkdirSync(join(dir, "etc/modprobe.d"), { recursive: true });
  writeFileSync(join(dir, "etc/modprobe.d/particle-test.conf"), TEST_UNLOADED_MODULES.map((m) => `blacklist ${m}\n`).join(""));
  slim(dir);
}

/**
 * Units of the Debian tree that only cost a test guest time: the guest has one vCPU, so every unit
 * started at boot delays the agent, not just those on the critical chain. Masked in the test tree
 * only (the product's images keep them). getty-static was on the critical chain to multi-user.target
 * (6.6 s under TCG): it and getty@ start gettys on VTs nobody sees (-display none); the serial getty
 * on ttyS0 stays for logging in when debugging. e2scrub_reap scans for LVM snapshots (there are
 * none); modprobe@drm loads the DRM core for a guest with no GPU (wanted by logind, which does not
 * run without dbus). The timers would never fire within a test boot but are started on every boot.
 */
const TEST_MASKED_UNITS = [
  "getty-static.service", "getty@.service", "e2scrub_reap.service", "modprobe@drm.service",
  "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer", "fstrim.timer",
];

/**
 * Modules udev loads for the emulated i440fx board that no test uses (every disk is virtio; the
 * harness reads the serial ports only): the IDE controller's ATA drivers (with libata and scsi_mod,
 * then an empty-channel probe), the SMBus, the PC speaker, the PS/2 mouse. Each costs a load and
 * an init under TCG on the guest's one vCPU, twice per boot (initramfs, then the real root). Left out
 * of the test initramfs and blacklisted (alias loading only) in the test tree; the product loads them.
 */
const TEST_UNLOADED_MODULES = ["ata_piix", "ata_generic", "pata_acpi", "i2c_piix4", "pcspkr", "psmouse", "serio_raw"];

/**
 * Every byte of the guest tree is staged, sealed (fs-verity, ~10 MB/s under TCG) and imaged several
 * times per run of the tier, and every module lands in the initramfs: drop what a QEMU guest never
 * uses, the way container images drop docs and locales (about a fifth of the tree).
 */
const SLIM_PATHS = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"];
const SLIM_MODULES = ["sound", "drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/net/ethernet", "drivers/infiniband", "drivers/iio", "drivers/bluetooth", "drivers/staging", "net/bluetooth", "net/wireless", "net/mac80211"];

function slim(dir: string): void {
  const kver = kernelVersion(dir);
  const modules = join("usr/lib/modules", kver, "kernel");
  for (const p of [...SLIM_PATHS, ...SLIM_MODULES.map((m) => join(modules, m))]) sh("rm", ["-rf", join(dir, p)]);
  for (const p of SLIM_PATHS) mkdirSync(join(dir, p), { recursive: true });
  // The module index must agree with what is left, or udev and dracut look for missing files.
  sh("chroot", [dir, "depmod", kver]);
}

export function kernelVersion(tree: string): string {
  const kvers = readdirSync(join(tree, "usr/lib/modules"));
  if (kvers.length !== 1) throw new Error(`expected one kernel in ${tree}, found ${kvers.join(", ")}`);
  return kvers[0]!;
}

export interface GuestTree {
  dir: string;
  key: string;
  kver: string;
  kernel: string;
}

/** The base tree plus Particle-OS installed with `make install DESTDIR=…`. */
export async function guestTree(suite: Suite = SUITE): Promise<GuestTree> {
  const base = await guestBase(suite);
  sh("make", ["-C", REPO, "--no-print-directory", "-s", "build"]);
  const inputs = [base, TREE_VERSION, ...Object.entries(agentFiles()).flat()];
  for (const f of ["dist/particle", "dist/particle-boot", "Makefile", ...moduleFiles(), ...installedFiles()]) inputs.push(f, await fileHash(join(REPO, f)));
  const key = hashOf(...inputs);
  const dir = await cached(`guest-tree-${key}`, async (tmp) => {
    sh("cp", ["-a", "--reflink=auto", base, tmp]);
    sh("make", ["-C", REPO, "--no-print-directory", "-s", "install", `DESTDIR=${tmp}`]);
    addTestFiles(tmp);
  });
  const kver = kernelVersion(dir);
  return { dir, key, kver, kernel: join(dir, "boot", `vmlinuz-${kver}`) };
}

/** What `make install` copies besides the binaries and the dracut module: units, health checks. */
function installedFiles(): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(REPO, rel), { withFileTypes: true }).sort((x, y) => x.name.localeCompare(y.name))) {
      if (e.isDirectory()) walk(`${rel}/${e.name}`);
      else out.push(`${rel}/${e.name}`);
    }
  };
  for (const d of ["grub", "systemd-boot", "health"]) walk(d);
  return out;
}

function moduleFiles(): string[] {
  const d = join(REPO, "dracut-module/90particle");
  return readdirSync(d).sort().map((f) => `dracut-module/90particle/${f}`);
}

/** Runs `fn` with /proc, /sys and /dev bound into `tree`, and always unmounts them (mkfs -d and
 *  mkfs.erofs would otherwise copy the host's /proc and /dev). */
export function withChrootMounts<T>(tree: string, fn: () => T): T {
  const binds = ["proc", "sys", "dev"];
  const done: string[] = [];
  try {
    for (const b of binds) {
      sh("mount", ["--rbind", `/${b}`, join(tree, b)]);
      sh("mount", ["--make-rslave", join(tree, b)]);
      done.push(b);
    }
    return fn();
  } finally {
    for (const b of done.reverse()) spawnSync("umount", ["-R", join(tree, b)]);
  }
}

export interface InitramfsOptions {
  /** Include the particle dracut module (default true). */
  particle?: boolean;
  /** Extra `--include SRC DEST` pairs (host paths), e.g. for benchmark units. */
  include?: [string, string][];
  /** Part of the cache key for `include`. */
  includeKey?: string;
}

/** Builds (or reuses) the tree's initramfs with dracut inside a chroot of the tree. */
export async function initramfs(g: GuestTree, opts: InitramfsOptions = {}): Promise<string> {
  const particle = opts.particle ?? true;
  const key = hashOf(g.key, String(particle), opts.includeKey ?? "", TEST_UNLOADED_MODULES.join(","));
  return cached(`initrd-${key}.img`, async (out) => {
    const inTree = `/tmp/initrd-${process.pid}.img`;
    // No --nostrip: strip is in the tree (as on Ubuntu) and the module itself must keep particle-boot whole.
    const args = ["dracut", "--force", "--quiet", "--no-hostonly", "--zstd", "--kver", g.kver, "--omit-drivers", TEST_UNLOADED_MODULES.join(" ")];
    if (particle) args.push("--add", "particle");
    const staged: string[] = [];
    for (const [i, [src]] of (opts.include ?? []).entries()) {
      const t = join(g.dir, "tmp", `include-${process.pid}-${i}`);
      sh("cp", ["-a", src, t]);
      staged.push(t);
    }
    (opts.include ?? []).forEach(([, dest], i) => args.push("--include", `/tmp/include-${process.pid}-${i}`, dest));
    try {
      withChrootMounts(g.dir, () => sh("chroot", [g.dir, ...args, inTree]));
      sh("mv", [join(g.dir, inTree), out]);
    } finally {
      for (const t of staged) sh("rm", ["-rf", t]);
      sh("rm", ["-f", join(g.dir, inTree)]);
    }
  });
}

/** The contents of `path` inside an initramfs (or, without `path`, its listing), read by the
 *  tree's own lsinitrd. */
export function initramfsFile(g: GuestTree, initrd: string, path?: string): Buffer {
  const inTree = join(g.dir, "tmp", `lsinitrd-${process.pid}.img`);
  copyFileSync(initrd, inTree);
  try {
    const args = [g.dir, "lsinitrd", `/tmp/lsinitrd-${process.pid}.img`, ...(path ? ["-f", path] : [])];
    return withChrootMounts(g.dir, () => execFileSync("chroot", args, { maxBuffer: 1 << 30 }));
  } finally {
    sh("rm", ["-f", inTree]);
  }
}

export function size(path: string): number {
  return statSync(path).size;
}

export { sh, renameSync, existsSync };
