import { describe, expect, it } from "vitest";
import { formatVerdicts, kernelCapabilities, type KernelFacts } from "../../runtime/src/kernel/capabilities.ts";
import { parseKernelConfig } from "../../runtime/src/kernel/config.ts";
import { chooseFormat } from "../../runtime/src/kernel/format-choice.ts";
import { bootKernel, kernelFactsFromTree, moduleNames, treeKernels } from "../../runtime/src/kernel/probe.ts";
import { atLeast, parseKernelRelease } from "../../runtime/src/kernel/release.ts";
import { inodeView, type TreeView } from "../../runtime/src/kernel/tree-view.ts";
import type { Inode } from "../../runtime/src/tree/model.ts";

/** Configs as Debian builds them: bookworm (6.1) and trixie (6.12). */
const DEBIAN_FS = "CONFIG_BLK_DEV_LOOP=m\nCONFIG_OVERLAY_FS=m\nCONFIG_SQUASHFS=m\nCONFIG_SQUASHFS_ZSTD=y\nCONFIG_EROFS_FS=m\nCONFIG_FS_VERITY=y\n";
const facts = (release: string, config: string | null, modules: string[] | null = null): KernelFacts =>
  ({ release, config: config === null ? null : parseKernelConfig(config), modules });
const bootable = (f: KernelFacts) => formatVerdicts(kernelCapabilities(f)).filter((v) => v.boots).map((v) => v.format);

describe("kernel release strings", () => {
  it.each([
    ["6.1.0-28-amd64", 6, 1, 0],
    ["6.12.48+deb13-amd64", 6, 12, 48],
    ["5.15.0-91-generic", 5, 15, 0],
    ["6.6", 6, 6, 0],
  ])("%s", (text, major, minor, patch) => {
    expect(parseKernelRelease(text)).toEqual({ text, major, minor, patch });
  });

  it("refuses a release without MAJOR.MINOR, naming it", () => {
    expect(() => parseKernelRelease("vmlinuz")).toThrow(/kernel release "vmlinuz"/);
  });

  it("compares against upstream versions", () => {
    expect(atLeast(parseKernelRelease("6.5.0"), 6, 5)).toBe(true);
    expect(atLeast(parseKernelRelease("6.4.99"), 6, 5)).toBe(false);
    expect(atLeast(parseKernelRelease("7.0"), 6, 12)).toBe(true);
  });
});

describe("kernel config", () => {
  it("keeps set options, drops comments and unset ones, unquotes strings", () => {
    expect(parseKernelConfig('# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x y"\nCONFIG_D=m\n')).toEqual({ CONFIG_A: "y", CONFIG_C: "x y", CONFIG_D: "m" });
  });
});

describe("which formats a kernel boots", () => {
  it.each([
    ["Debian bookworm 6.1: no data-only overlay lowers", facts("6.1.0-28-amd64", DEBIAN_FS), ["erofs", "squashfs"]],
    ["Debian trixie 6.12 with file-backed EROFS", facts("6.12.48+deb13-amd64", `${DEBIAN_FS}CONFIG_EROFS_FS_BACKED_BY_FILE=y\n`), ["composefs", "erofs", "squashfs"]],
    ["6.6 is enough for composefs", facts("6.6.0", DEBIAN_FS), ["composefs", "erofs", "squashfs"]],
    ["6.5 has data-only lowers but no verity=", facts("6.5.0", DEBIAN_FS), ["erofs", "squashfs"]],
    ["no EROFS in the config: squashfs only", facts("6.8.0-generic", DEBIAN_FS.replace("CONFIG_EROFS_FS=m\n", "")), ["squashfs"]],
    ["no loop devices on 6.1: nothing boots", facts("6.1.0", DEBIAN_FS.replace("CONFIG_BLK_DEV_LOOP=m\n", "")), []],
    ["no loop devices on 6.12 with file-backed EROFS: composefs and erofs", facts("6.12.0", `${DEBIAN_FS.replace("CONFIG_BLK_DEV_LOOP=m\n", "")}CONFIG_EROFS_FS_BACKED_BY_FILE=y\n`), ["composefs", "erofs"]],
    ["squashfs without zstd", facts("6.1.0", DEBIAN_FS.replace("CONFIG_SQUASHFS_ZSTD=y\n", "")), ["erofs"]],
    ["no config, modules say: no erofs module", facts("6.1.0", null, ["loop", "overlay", "squashfs"]), ["squashfs"]],
    ["no config, no module list: judged by version alone", facts("6.12.0", null), ["composefs", "erofs", "squashfs"]],
  ])("%s", (_name, f, want) => {
    expect(bootable(f)).toEqual(want);
  });

  it("says why a format cannot boot", () => {
    const v = formatVerdicts(kernelCapabilities(facts("6.1.0-28-amd64", DEBIAN_FS)));
    expect(v[0]).toMatchObject({ format: "composefs", boots: false });
    expect(v[0]!.why).toMatch(/data-only lower layers \(6\.5\): kernel 6\.1 < 6\.5/);
    expect(v[1]).toMatchObject({ format: "erofs", boots: true, why: "EROFS on a loop device" });
  });

  it("takes the evidence from the config first, then /proc/filesystems, then modules", () => {
    const c = kernelCapabilities({ ...facts("6.1.0", null, []), filesystems: ["ext4", "erofs"] });
    expect(c.erofs).toEqual({ support: "yes", why: "erofs in /proc/filesystems" });
    expect(c.squashfs.support).toBe("no");
    expect(kernelCapabilities(facts("6.1.0", DEBIAN_FS)).erofs).toEqual({ support: "yes", why: "CONFIG_EROFS_FS=m" });
    expect(kernelCapabilities(facts("6.1.0", null)).erofs.support).toBe("unknown");
  });
});

describe("the stage-time format choice", () => {
  const bookworm = facts("6.1.0-28-amd64", DEBIAN_FS);
  const trixie = facts("6.12.48+deb13-amd64", `${DEBIAN_FS}CONFIG_EROFS_FS_BACKED_BY_FILE=y\n`);

  it("auto: the newest format the kernel boots", () => {
    expect(chooseFormat("auto", trixie)).toMatchObject({ ok: true, format: "composefs" });
    const c = chooseFormat("auto", bookworm);
    expect(c).toMatchObject({ ok: true, format: "erofs" });
    expect(c.ok && c.why).toMatch(/^kernel 6\.1\.0-28-amd64: erofs .*; not composefs: /);
  });

  it("auto within what the source allows (an image cannot become squashfs)", () => {
    expect(chooseFormat("auto", facts("6.8.0", DEBIAN_FS.replace("CONFIG_EROFS_FS=m\n", "")), ["composefs", "erofs"]))
      .toMatchObject({ ok: false, message: expect.stringMatching(/kernel 6\.8\.0 of the deployment can boot none of composefs, erofs/) });
  });

  it("a format asked for and bootable is kept", () => {
    expect(chooseFormat("squashfs", bookworm)).toMatchObject({ ok: true, format: "squashfs" });
  });

  it("a format asked for that cannot boot is refused, naming the kernel, the format and the alternatives", () => {
    const c = chooseFormat("composefs", bookworm);
    expect(c.ok).toBe(false);
    expect(!c.ok && c.message).toMatch(/^--format composefs: the deployment's kernel 6\.1\.0-28-amd64 cannot boot a composefs root \(.*6\.1 < 6\.5.*\); formats it can boot: erofs, squashfs .*nothing was staged$/);
  });

  it("a tree without a kernel: the request as is, composefs for auto", () => {
    expect(chooseFormat("auto", undefined)).toMatchObject({ ok: true, format: "composefs" });
    expect(chooseFormat("erofs", undefined)).toMatchObject({ ok: true, format: "erofs" });
  });
});

describe("reading a kernel's facts from a tree", () => {
  const file = (text: string): Inode => ({ kind: "file", perm: 0o644, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0, xattrs: [], size: text.length, data: { kind: "bytes", bytes: Buffer.from(text) } });
  const dir = (entries: Record<string, Inode>): Inode => ({
    kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0, xattrs: [], size: 0,
    entries: Object.entries(entries).sort(([a], [b]) => a.localeCompare(b)).map(([name, inode]) => ({ name: Buffer.from(name), inode })),
  });
  const tree = (kver: string, extra: Record<string, Inode> = {}): TreeView => inodeView(dir({
    boot: dir({ [`vmlinuz-${kver}`]: file("k"), [`config-${kver}`]: file(DEBIAN_FS), ...extra }),
    usr: dir({ lib: dir({ modules: dir({ [kver]: dir({
      "modules.dep": file("kernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko\nkernel/drivers/block/loop.ko:\n"),
      "modules.builtin": file("kernel/fs/ext4/ext4.ko\n"),
    }) }) }) }),
  }), () => { throw new Error("no objects in this tree"); });

  it("finds the kernel, its config and its modules", () => {
    const t = tree("6.1.0-28-amd64");
    expect(treeKernels(t)).toEqual(["6.1.0-28-amd64"]);
    expect(bootKernel(t)).toBe("6.1.0-28-amd64");
    const f = kernelFactsFromTree(t, "6.1.0-28-amd64");
    expect(f.config).toMatchObject({ CONFIG_EROFS_FS: "m" });
    expect(f.modules).toEqual(["erofs", "ext4", "loop"]);
  });

  it("module names from modules.dep paths", () => {
    expect(moduleNames("kernel/fs/overlayfs/overlay.ko.zst:\nkernel/drivers/md/dm-verity.ko: x\n\n")).toEqual(["dm_verity", "overlay"]);
  });

  it("a tree with modules but no kernel image has no boot kernel", () => {
    const t = inodeView(dir({ usr: dir({ lib: dir({ modules: dir({ "6.1.0": dir({}) }) }) }) }), () => "");
    expect(bootKernel(t)).toBeUndefined();
  });
});
