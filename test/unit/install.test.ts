import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ESP_SIZE, GPT_OVERHEAD, MIN_ROOT, minimumDiskBytes, mountsUsing, parseSize, sfdiskScript, sizeError, swapsUsing } from "../../runtime/src/install/disk.ts";
import { partitionPath } from "../../runtime/src/install/block.ts";
import { missingParticleFiles, treeCheckError } from "../../runtime/src/install/tree-check.ts";
import { dracutArgs, kernelVersions, pickKernel } from "../../runtime/src/install/initramfs.ts";
import { espMountPoint, espMountUnit, mountUnitName } from "../../runtime/src/install/esp-mount.ts";
import { checkLuksVar, sourceDir } from "../../runtime/src/install/install.ts";
import { pidOfWorkDir, workDirPrefix } from "../../runtime/src/install/stale.ts";

const tmp = () => mkdtempSync(join(tmpdir(), "install-unit-"));
const touch = (root: string, p: string, data = "x") => {
  mkdirSync(join(root, p, ".."), { recursive: true });
  writeFileSync(join(root, p), data);
};

describe("sizes", () => {
  it.each([
    ["8G", 8 * 1024 ** 3],
    ["512M", 512 * 1024 ** 2],
    ["1.5G", 1.5 * 1024 ** 3],
    ["4096", 4096],
    ["2GiB", 2 * 1024 ** 3],
    ["10k", 10240],
  ])("parseSize(%s)", (s, n) => expect(parseSize(s)).toBe(n));

  it.each(["", "8X", "-1G", "G"])("refuses %j", (s) => expect(() => parseSize(s)).toThrow(/--size/));

  it("minimum: ESP + at least MIN_ROOT, or 2.2× the tree", () => {
    expect(minimumDiskBytes()).toBe(GPT_OVERHEAD + ESP_SIZE + MIN_ROOT);
    expect(minimumDiskBytes(1000)).toBe(GPT_OVERHEAD + ESP_SIZE + MIN_ROOT);
    expect(minimumDiskBytes(1024 ** 3)).toBe(GPT_OVERHEAD + ESP_SIZE + Math.ceil(1024 ** 3 * 2.2));
  });

  it("a too-small error gives both numbers", () => {
    expect(sizeError("/x.img", 600 * 1048576, 1300 * 1048576).message).toMatch(/\/x.img is too small: 0\.59 GiB \(629145600 bytes\), but at least 1\.27 GiB \(1363148800 bytes\)/);
  });
});

describe("partition table", () => {
  it("GPT with a 512 MiB ESP first and the root after it", () => {
    expect(sfdiskScript()).toBe(
      "label: gpt\n" +
      'size=524288KiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="ESP"\n' +
      'type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="particle-root"\n');
  });
  it("--luks-var: the root is sized to leave the /var partition the end of the disk, as partition 3", () => {
    const disk = 4 * 1024 ** 3;
    expect(sfdiskScript(256 * 1048576, disk)).toBe(
      "label: gpt\n" +
      'size=524288KiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="ESP"\n' +
      `size=${4096 - 4 - 512 - 256}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="particle-root"\n` +
      'size=256MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="particle-var"\n');
    expect(minimumDiskBytes(undefined, 256 * 1048576)).toBe(GPT_OVERHEAD + ESP_SIZE + MIN_ROOT + 256 * 1048576);
    expect(() => sfdiskScript(16 * 1048576, disk)).toThrow(/--luks-var .*at least 64 MiB/);
    expect(() => sfdiskScript(3 * 1024 ** 3, disk)).toThrow(/a 4.00 GiB disk leaves 508 MiB for the root beside a 3072 MiB \/var; at least 768 MiB/);
  });
  it("--luks-var goes with --sealed keys that can sign the TPM2 policy, and with particle.var=luks", () => {
    const ok = { luksVar: 1 << 28, sealed: "/k", kargs: ["particle.var=luks"] };
    expect(() => checkLuksVar(ok, true)).not.toThrow();
    expect(() => checkLuksVar({ ...ok, luksVar: undefined }, true)).toThrow(/particle\.var=luks needs --luks-var/);
    expect(() => checkLuksVar({ ...ok, sealed: undefined }, true)).toThrow(/--luks-var needs --sealed/);
    expect(() => checkLuksVar(ok, false)).toThrow(/\/k has no tpm2-pcr-private\.pem/);
    expect(() => checkLuksVar({ kargs: [] }, false)).not.toThrow();
  });
  it.each([
    ["/dev/sda", 1, "/dev/sda1"],
    ["/dev/loop7", 2, "/dev/loop7p2"],
    ["/dev/nvme0n1", 1, "/dev/nvme0n1p1"],
    ["/dev/vdb", 2, "/dev/vdb2"],
  ])("partitionPath(%s, %d)", (d, n, want) => expect(partitionPath(d, n)).toBe(want));
});

describe("in-use checks", () => {
  const mountinfo = [
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "40 22 7:1 / /mnt/my\\040disk rw - ext4 /dev/loop0p1 rw",
    "41 22 0:5 / /dev rw - devtmpfs udev rw",
  ].join("\n");
  it.each([
    [["7:0"], []],
    [["7:0", "7:1", "7:2"], ["/mnt/my disk"]],
    [["254:0"], ["/"]],
  ])("mountsUsing %j", (devs, want) => expect(mountsUsing(mountinfo, new Set(devs))).toEqual(want));

  it("swapsUsing", () => {
    const swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sdb2                               partition\t1048572\t\t0\t\t-2\n";
    expect(swapsUsing(swaps, new Set(["/dev/sdb", "/dev/sdb2"]))).toEqual(["/dev/sdb2"]);
    expect(swapsUsing(swaps, new Set(["/dev/sda"]))).toEqual([]);
  });
});

describe("the tree must carry Particle-OS", () => {
  it("lists what is missing, and the error says how to fix it", () => {
    const t = tmp();
    touch(t, "usr/bin/particle");
    const missing = missingParticleFiles(t);
    expect(missing.map((m) => m.path)).toEqual(["usr/bin/particle-boot", "usr/lib/dracut/modules.d/90particle"]);
    const msg = treeCheckError("dir:/t", missing).message;
    expect(msg).toMatch(/dir:\/t lacks Particle-OS itself: missing \/usr\/bin\/particle-boot \(.*\), \/usr\/lib\/dracut\/modules.d\/90particle/);
    expect(msg).toMatch(/make install DESTDIR=/);
  });
  it("a complete tree has nothing missing", () => {
    const t = tmp();
    touch(t, "usr/bin/particle");
    touch(t, "usr/bin/particle-boot");
    mkdirSync(join(t, "usr/lib/dracut/modules.d/90particle"), { recursive: true });
    expect(missingParticleFiles(t)).toEqual([]);
  });
});

describe("kernel and dracut", () => {
  it("finds kernels in /usr/lib/modules or Debian's /boot, newest last", () => {
    const t = tmp();
    touch(t, "usr/lib/modules/6.12.9-amd64/vmlinuz");
    touch(t, "usr/lib/modules/6.12.10-amd64/modules.dep");
    touch(t, "boot/vmlinuz-6.12.10-amd64");
    mkdirSync(join(t, "usr/lib/modules/5.0-nokernel"), { recursive: true });
    expect(kernelVersions(t)).toEqual(["6.12.9-amd64", "6.12.10-amd64"]);
    expect(pickKernel(t)).toEqual({ kver: "6.12.10-amd64", path: join(t, "boot/vmlinuz-6.12.10-amd64") });
    expect(pickKernel(t, "6.12.9-amd64").path).toBe(join(t, "usr/lib/modules/6.12.9-amd64/vmlinuz"));
    expect(() => pickKernel(t, "7.0")).toThrow(/no kernel found.*for 7.0/);
    expect(() => pickKernel(tmp())).toThrow(/no kernel found/);
  });
  it("dracut keeps binaries unstripped and adds the particle module", () => {
    expect(dracutArgs("/tmp/i.img", "6.12")).toEqual(["--force", "--no-hostonly", "--zstd", "--nostrip", "--add", "particle", "/tmp/i.img", "6.12"]);
  });
});

describe("ESP mount on the installed system", () => {
  it("picks the first mount point the read-only tree has", () => {
    const t = tmp();
    mkdirSync(join(t, "boot/efi"), { recursive: true });
    expect(espMountPoint(t)).toBe("/boot/efi");
    mkdirSync(join(t, "efi"));
    expect(espMountPoint(t)).toBe("/efi");
    expect(() => espMountPoint(tmp())).toThrow(/none of \/efi, \/boot\/efi, \/boot/);
  });
  it.each([["/efi", "efi.mount"], ["/boot/efi", "boot-efi.mount"], ["/boot", "boot.mount"]])("unit name of %s", (w, n) => expect(mountUnitName(w)).toBe(n));
  it("the unit mounts the ESP by UUID", () => {
    const u = espMountUnit("/boot", "ABCD-1234");
    expect(u.name).toBe("boot.mount");
    expect(u.text).toMatch(/^What=\/dev\/disk\/by-uuid\/ABCD-1234$/m);
    expect(u.text).toMatch(/^Where=\/boot$/m);
    expect(u.text).toMatch(/^Type=vfat$/m);
  });
});

describe("sources checked before the disk is touched", () => {
  it.each([
    ["dir:TREE", true],
    ["TREE", true],
    ["dir:/nonexistent-xyz", false],
    ["tar:/x.tar", false],
    ["oci:foo", false],
  ])("%s", (s, isDir) => {
    const t = tmp();
    const got = sourceDir(s.replace("TREE", t));
    expect(got === undefined ? false : got === t).toBe(isDir);
  });
});

describe("what a killed install left", () => {
  it.each([
    ["particle-install-1234-AbC9xy", 1234],
    ["particle-install-1-z", 1],
    ["particle-install-abc", undefined],
    ["particle-mount-12-x", undefined],
    ["xparticle-install-12-x", undefined],
  ] as const)("%s", (name, pid) => expect(pidOfWorkDir(name)).toBe(pid));

  it("the work directory carries the pid of its install", () => {
    expect(pidOfWorkDir(`${workDirPrefix(4321)}Q1w2E3`)).toBe(4321);
    expect(workDirPrefix()).toBe(`particle-install-${process.pid}-`);
  });
});
