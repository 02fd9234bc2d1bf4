// Helpers for the install/bls/cycle host tests: a tiny tree that passes install's checks, a way to
// read a vfat ESP inside a disk image without mounting it (mtools, offset 1 MiB), and mounting the
// root partition through a loop device.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";

export const HOST_SYSTEMD_BOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MTOOLS_SKIP_CHECK: "1" } });
const shBuf = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 30, env: { ...process.env, MTOOLS_SKIP_CHECK: "1" } });

/** A few files that look like an OS with Particle-OS installed, a fake kernel 6.12.0-fake (new enough
 *  for composefs, the format --format auto then picks). */
export function makeTinyTree(root: string, opts: { particle?: boolean; kernelBytes?: Buffer; release?: string } = {}): void {
  const put = (p: string, data: string | Buffer, mode = 0o644) => {
    mkdirSync(join(root, p, ".."), { recursive: true });
    writeFileSync(join(root, p), data);
    chmodSync(join(root, p), mode);
  };
  for (const d of ["efi", "proc", "sys", "dev", "tmp", "run", "var/tmp", "etc/ssh"]) mkdirSync(join(root, d), { recursive: true });
  put("etc/os-release", `ID=debian\nVERSION_ID=${opts.release ?? "13"}\n`);
  put("etc/hostname", "tiny\n");
  put("etc/ssh/sshd_config", "PermitRootLogin no\n");
  put("usr/lib/modules/6.12.0-fake/vmlinuz", opts.kernelBytes ?? Buffer.alloc(1_500_000, 1));
  if (opts.particle ?? true) {
    put("usr/bin/particle", "#!/bin/sh\n", 0o755);
    put("usr/bin/particle-boot", "#!/bin/sh\n", 0o755);
    put("usr/lib/dracut/modules.d/90particle/module-setup.sh", "#!/bin/bash\n", 0o755);
  }
}

/** The ESP (partition 1 at 1 MiB) of a disk image, read with mtools. */
export const esp = {
  at: (disk: string) => `${disk}@@1M`,
  read: (disk: string, path: string): Buffer => shBuf("mtype", ["-i", esp.at(disk), `::/${path}`]),
  list: (disk: string, path: string): string[] =>
    sh("mdir", ["-i", esp.at(disk), "-b", `::/${path}`]).split("\n").filter(Boolean).map((l) => l.replace(/\/$/, "").split("/").pop()!).filter((n) => n !== "." && n !== ".."),
  /** Copies the whole ESP into a directory (for status/rollback against a directory). */
  extract: (disk: string, dir: string): string => {
    mkdirSync(dir, { recursive: true });
    sh("mcopy", ["-i", esp.at(disk), "-s", "-p", "-n", "::/*", dir]);
    return dir;
  },
};

/** Mounts partition 2 of `disk` for `fn`, read-only unless a command under test writes the store. */
export function withRoot<T>(disk: string, fn: (root: string, dev: string) => T, opts: { writable?: boolean } = {}): T {
  const ro = opts.writable ? [] : ["--read-only"];
  const loop = sh("losetup", ["--find", "--show", "--partscan", ...ro, disk]).trim();
  const mnt = execFileSync("mktemp", ["-d"], { encoding: "utf8" }).trim();
  try {
    sh("partx", ["--update", loop]);
    const dev = `${loop}p2`;
    for (let i = 0; i < 100 && !existsSync(dev); i++) execFileSync("sleep", ["0.05"]);
    sh("mount", ["-o", opts.writable ? "rw" : "ro", dev, mnt]);
    try {
      return fn(mnt, dev);
    } finally {
      sh("umount", [mnt]);
    }
  } finally {
    sh("losetup", ["-d", loop]);
    sh("rmdir", [mnt]);
  }
}
