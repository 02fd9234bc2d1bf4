// particle install --to-disk on the host, as root, with loop devices. A tiny tree with a fake
// kernel and a ready initramfs (--initramfs) tests the disk layout and every refusal in seconds;
// the dracut path is tested below on the real trixie tree with Particle-OS that the QEMU tier boots.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { particle } from "./lib/particle.ts";
import { getAll, getKey, getOptions, parseEntry } from "../../runtime/src/bls/entry.ts";
import { parseLoaderConf } from "../../runtime/src/bls/loader-conf.ts";
import { makeTinyTree, esp, withRoot, HOST_SYSTEMD_BOOT } from "./install-helpers.ts";
import { guestTree } from "../qemu/lib/guest.ts";
import { startRegistry, type TestRegistry } from "./lib/registry.ts";
import { writeImage } from "./lib/oci-layout.ts";
import { tarBytes } from "./lib/oci-tar.ts";

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let dir: string;
let tree: string;
let initrd: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "particle-install-test-"));
  tree = join(dir, "tree");
  makeTinyTree(tree);
  initrd = join(dir, "initrd.img");
  writeFileSync(initrd, Buffer.alloc(700_000, 7));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("install to a disk image file", () => {
  let disk: string;
  let result: Record<string, string>;
  beforeAll(() => {
    disk = join(dir, "disk.img");
    const r = particle(["install", "--to-disk", disk, "--source", `dir:${tree}`, "--size", "2G", "--initramfs", initrd, "--karg", "console=ttyS0", "--json"]);
    if (r.code !== 0) throw new Error(r.stderr);
    result = JSON.parse(r.stdout);
  });

  it("creates a sparse image of the requested size", () => {
    const st = statSync(disk);
    expect(st.size).toBe(2 * 1024 ** 3);
    expect(st.blocks * 512).toBeLessThan(st.size / 4);
    expect(result).toMatchObject({ deployment: "1", kernel: "6.12.0-fake", entry: "particle-13-1+3.conf" });
  });

  it("lays out GPT: 512 MiB ESP, then the root partition filling the disk", () => {
    const t = JSON.parse(sh("sfdisk", ["-J", disk])).partitiontable;
    expect(t.label).toBe("gpt");
    expect(t.partitions).toHaveLength(2);
    const [e, r] = t.partitions;
    expect(e).toMatchObject({ start: 2048, size: 1048576, type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", name: "ESP" });
    expect(r).toMatchObject({ type: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", name: "particle-root" });
    expect(r.start + r.size).toBeGreaterThan(t.lastlba - 2048);
  });

  it("installs systemd-boot at the removable-media path and EFI/systemd", () => {
    const want = sha(readFileSync(HOST_SYSTEMD_BOOT));
    expect(sha(esp.read(disk, "EFI/BOOT/BOOTX64.EFI"))).toBe(want);
    expect(sha(esp.read(disk, "EFI/systemd/systemd-bootx64.efi"))).toBe(want);
  });

  it("writes loader.conf with the glob default", () => {
    const conf = parseLoaderConf(esp.read(disk, "loader/loader.conf").toString());
    expect(conf).toEqual({ default: "particle-*", timeout: "3" });
  });

  it("writes the entry with boot counting, pinned image and root UUID", () => {
    expect(esp.list(disk, "loader/entries")).toEqual(["particle-13-1+3.conf"]);
    const e = parseEntry(esp.read(disk, "loader/entries/particle-13-1+3.conf").toString());
    expect(getKey(e, "title")).toBe("Particle-OS 13 (deployment 1, 6.12.0-fake)");
    expect(getKey(e, "version")).toBe("1");
    expect(getKey(e, "sort-key")).toBe("particle");
    expect(getOptions(e)).toBe(`root=UUID=${result.rootUuid} rw particle.deploy=1 particle.image=${result.imageDigest} console=ttyS0`);
    // The kernel and initramfs the entry names are there, under their own digests.
    const kernel = readFileSync(join(tree, "usr/lib/modules/6.12.0-fake/vmlinuz"));
    expect(getKey(e, "linux")).toBe(`/particle/${sha(kernel)}/vmlinuz`);
    expect(getAll(e, "initrd")).toEqual([`/particle/${sha(readFileSync(initrd))}/initrd.img`]);
    expect(esp.read(disk, getKey(e, "linux")!.slice(1)).equals(kernel)).toBe(true);
    expect(esp.read(disk, getAll(e, "initrd")[0]!.slice(1)).equals(readFileSync(initrd))).toBe(true);
    expect(esp.list(disk, "particle").sort()).toEqual([sha(kernel), sha(readFileSync(initrd))].sort());
  });

  it("stages the deployment into the ext4 (verity feature) root, with the ESP mount as a local /etc change", () => {
    withRoot(disk, (root, dev) => {
      expect(sh("dumpe2fs", ["-h", dev])).toMatch(/features:.*\bverity\b/);
      expect(sh("blkid", ["-p", "-s", "UUID", "-o", "value", dev]).trim()).toBe(result.rootUuid);
      const m = JSON.parse(readFileSync(join(root, "particle/deploy/1/deployment.json"), "utf8"));
      expect(m).toMatchObject({ id: "1", imageDigest: result.imageDigest, source: `dir:${tree}`, version: "13", kernel: "6.12.0-fake" });
      const unit = readFileSync(join(root, "particle/deploy/1/etc/upper/systemd/system/efi.mount"), "utf8");
      expect(unit).toContain(`What=/dev/disk/by-uuid/${result.espUuid}`);
      expect(unit).toContain("Where=/efi");
      expect(existsSync(join(root, "particle/deploy/1/etc/upper/systemd/system/local-fs.target.wants/efi.mount"))).toBe(true);
    });
  });

  it("seals the store now where this kernel has fs-verity (/sys/fs/verity), otherwise leaves it to the first boot", () => {
    const kernelHasVerity = existsSync("/sys/fs/verity");
    expect(result.verity).toBe(kernelHasVerity ? "sealed" : "first-boot");
    withRoot(disk, (root) => {
      // The stamp is what tells particle-boot's first boot that it has nothing to write.
      expect(existsSync(join(root, "particle/deploy/1/sealed"))).toBe(kernelHasVerity);
    });
  });

  it("status reads the installed disk", () => {
    withRoot(disk, (root) => {
      const espDir = esp.extract(disk, join(dir, "esp-copy"));
      const r = particle(["status", "--sysroot", root, "--esp", espDir, "--cmdline", "", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const h = JSON.parse(r.stdout);
      expect(h.status.booted).toBeNull();
      expect(h.status.staged).toMatchObject({ id: "1", imageDigest: result.imageDigest, bootEntry: { file: "particle-13-1+3.conf", triesLeft: 3 } });
      expect(h.status.bootloader.defaultEntry).toBe("particle-13-1.conf");
    });
  });

  it("leaves no loop device or mount behind", () => {
    expect(sh("losetup", ["--list", "--noheadings", "--output", "NAME", "--associated", disk]).trim()).toBe("");
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain("particle-install-");
  });
});

describe("install refuses", () => {
  const fail = (args: string[]) => {
    const r = particle(["install", ...args]);
    expect(r.code).not.toBe(0);
    return r.stderr;
  };

  it("a target that is too small, with the numbers, and creates nothing", () => {
    const t = join(dir, "small.img");
    expect(fail(["--to-disk", t, "--source", `dir:${tree}`, "--size", "600M", "--initramfs", initrd])).toMatch(/small.img is too small: 0\.59 GiB \(629145600 bytes\), but at least 1\.2\d GiB \(\d+ bytes\)/);
    expect(existsSync(t)).toBe(false);
  });

  it("an existing image file that is too small", () => {
    const t = join(dir, "small-existing.img");
    writeFileSync(t, "");
    sh("truncate", ["-s", "100M", t]);
    expect(fail(["--to-disk", t, "--source", `dir:${tree}`, "--initramfs", initrd])).toMatch(/too small: 0\.10 GiB/);
    expect(statSync(t).size).toBe(100 * 1048576);
  });

  it("a tree without Particle-OS, naming what is missing", () => {
    const bare = join(dir, "bare");
    makeTinyTree(bare, { particle: false });
    const t = join(dir, "bare.img");
    const msg = fail(["--to-disk", t, "--source", `dir:${bare}`, "--initramfs", initrd]);
    expect(msg).toMatch(/lacks Particle-OS itself: missing \/usr\/bin\/particle \(.*\), \/usr\/bin\/particle-boot \(.*\), \/usr\/lib\/dracut\/modules.d\/90particle/);
    expect(existsSync(t)).toBe(false);
  });

  it("a mounted block device", () => {
    const img = join(dir, "mounted.img");
    sh("truncate", ["-s", "64M", img]);
    sh("mkfs.ext4", ["-q", img]);
    const loop = sh("losetup", ["--find", "--show", img]).trim();
    const mnt = join(dir, "mnt");
    mkdirSync(mnt, { recursive: true });
    sh("mount", [loop, mnt]);
    try {
      expect(fail(["--to-disk", loop, "--source", `dir:${tree}`, "--initramfs", initrd])).toMatch(new RegExp(`${loop} is mounted \\(on ${mnt}\\)`));
    } finally {
      sh("umount", [mnt]);
      sh("losetup", ["-d", loop]);
    }
    // Untouched: still the ext4 we made.
    expect(sh("blkid", ["-p", "-s", "TYPE", "-o", "value", img]).trim()).toBe("ext4");
  });

  it("an image file attached to a loop device", () => {
    const img = join(dir, "attached.img");
    sh("truncate", ["-s", "3G", img]);
    const loop = sh("losetup", ["--find", "--show", img]).trim();
    try {
      expect(fail(["--to-disk", img, "--source", `dir:${tree}`, "--initramfs", initrd])).toMatch(new RegExp(`attached.img is in use: attached to ${loop}`));
    } finally {
      sh("losetup", ["-d", loop]);
    }
  });

  it.each([
    [["--to-disk", "/tmp/x.img", "--source", "docker://x/y", "--signature-policy", "/p.json", "--insecure-no-verify-signatures"], /--signature-policy and --insecure-no-verify-signatures contradict/],
    [["--source", "dir:/x"], /--to-disk <image-file\|block-device> is required/],
    [["--to-disk", "/tmp/x.img"], /--source <source> is required/],
    [["--to-disk", "/tmp/x.img", "--source", "dir:/x", "--bootloader", "lilo"], /--bootloader lilo: only systemd-boot/],
    [["--to-disk", "/tmp/x.img", "--source", "dir:/x", "--size", "huge"], /--size huge: expected a size/],
  ])("bad arguments %j", (args, msg) => expect(fail(args)).toMatch(msg));
});

// From an image in a real registry on 127.0.0.1, which the installed machine knows by another name:
// its containers configuration maps 10.0.2.100 to that registry, as a machine on QEMU's network
// would reach the build host.
describe("install from an image in a registry, tracking it by the machine's name for it", () => {
  let reg: TestRegistry;
  let machineHome: string;
  let source: string;
  const target = "docker://10.0.2.100/os/tiny:stable";
  const accept = () => join(dir, "accept.json");
  const digestOf = (ref: string, home = reg.home) =>
    execFileSync("skopeo", ["inspect", "--no-tags", "--format", "{{.Digest}}", ref], { encoding: "utf8", env: { ...process.env, HOME: home } }).trim();
  const push = (layout: string, tag: string) =>
    execFileSync("skopeo", ["--insecure-policy", "copy", "-q", `oci:${layout}:${tag}`, source], { stdio: "ignore", env: { ...process.env, HOME: reg.home } });
  const install = (disk: string, args: string[]) =>
    particle(["install", "--to-disk", disk, "--size", "2G", "--initramfs", initrd, ...args], { env: { HOME: reg.home } });

  beforeAll(async () => {
    reg = await startRegistry(join(dir, "registry"), { quiet: true });
    source = `docker://${reg.host}/os/tiny:stable`;
    const layout = join(dir, "layout");
    const packed = particle(["image", "pack", tree, layout, "--tag", "v1", "--epoch", "0"]);
    if (packed.code !== 0) throw new Error(packed.stderr);
    push(layout, "v1");
    machineHome = join(dir, "machine-home");
    mkdirSync(join(machineHome, ".config/containers"), { recursive: true });
    writeFileSync(join(machineHome, ".config/containers/registries.conf"), `[[registry]]\nprefix = "10.0.2.100"\nlocation = "${reg.host}"\ninsecure = true\n`);
    writeFileSync(accept(), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    writeFileSync(join(dir, "reject.json"), JSON.stringify({ default: [{ type: "reject" }] }));
  }, 60_000);
  afterAll(() => reg?.stop());

  it("records --target-imgref as the reference upgrade follows, with the digests of what was pulled", () => {
    const disk = join(dir, "from-registry.img");
    const r = install(disk, ["--source", source, "--target-imgref", target, "--signature-policy", accept(), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    const pulled = digestOf(source);
    withRoot(disk, (root) => {
      const m = JSON.parse(readFileSync(join(root, `particle/deploy/${res.deployment}/deployment.json`), "utf8"));
      expect(m).toMatchObject({ source, format: "composefs", kernel: "6.12.0-fake", oci: { reference: target, sourceDigest: pulled, layers: 1 } });

      // The machine's upgrade asks 10.0.2.100, not the installer's 127.0.0.1: the same image, then a new one.
      const check = () => particle(["upgrade", "--check", "--sysroot", root, "--from", res.deployment], { env: { HOME: machineHome } });
      const same = check();
      expect(same.code, same.stderr).toBe(0);
      expect(same.stderr).toContain(`no update: ${target} is still ${pulled}`);
      const layout2 = join(dir, "layout2");
      writeImage(layout2, { tag: "v2", layers: [{ tar: tarBytes([{ path: "etc/", type: "dir", mode: 0o755 }, { path: "etc/release", data: "v2\n" }]), compression: "gzip" }] });
      push(layout2, "v2");
      const moved = check();
      expect(moved.code, moved.stderr).toBe(0);
      expect(moved.stdout).toBe(`update available: ${target}\n  booted:    ${pulled}\n  available: ${digestOf(target, machineHome)}\n`);
    }, { writable: true });
  }, 60_000);

  it.each([
    ["a tree source", () => ["--source", `dir:${tree}`, "--target-imgref", target], () => `--target-imgref ${target}: the source dir:${tree} is not an image`],
    ["a reference without its transport", () => ["--source", source, "--target-imgref", "10.0.2.100/os/tiny:stable"], () => "--target-imgref 10.0.2.100/os/tiny:stable: not an image reference"],
    ["a malformed name", () => ["--source", source, "--target-imgref", "docker://10.0.2.100/OS/Tiny"], () => "--target-imgref docker://10.0.2.100/OS/Tiny: not a valid image name"],
  ])("--target-imgref with %s is refused, naming it, before the disk is touched", (_, args, msg) => {
    const fresh = join(dir, "never.img");
    const r = install(fresh, args());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(msg());
    expect(r.stderr).not.toContain("partitioning");
    expect(existsSync(fresh)).toBe(false);
    // Big enough to be installed on: only the refusal keeps its first sector from becoming a GPT.
    const old = join(dir, "kept.img");
    writeFileSync(old, "an old disk\n");
    truncateSync(old, 3 * 1024 ** 3);
    expect(install(old, args()).code).not.toBe(0);
    const head = Buffer.alloc(4096);
    const fd = openSync(old, "r");
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    expect(head.toString("latin1").replace(/\0+$/, "")).toBe("an old disk\n");
    expect(statSync(old).size).toBe(3 * 1024 ** 3);
  });

  it("--signature-policy reaches staging: a policy that rejects the image refuses it, naming it", () => {
    const disk = join(dir, "rejected.img");
    const reject = join(dir, "reject.json");
    const r = install(disk, ["--source", source, "--signature-policy", reject]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`image ${source} refused by the signature policy ${reject}`);
    expect(existsSync(disk)).toBe(false);
  }, 60_000);
});

// The dracut step needs a real trixie tree with Particle-OS installed: the one the QEMU tier boots
// (built here on a cold cache, then cached for that tier), never a fake tree.
describe("install with dracut from the trixie guest tree", () => {
  let guest: string;
  beforeAll(async () => {
    guest = (await guestTree()).dir;
  }, 1_800_000);

    it("builds the initramfs from the deployment's own kernel with the particle module", () => {
      const disk = join(dir, "trixie.img");
      const r = particle(["install", "--to-disk", disk, "--source", `dir:${guest}`, "--size", "4G", "--karg", "console=ttyS0", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout);
      const e = parseEntry(esp.read(disk, `loader/entries/${res.entry}`).toString());
      const initrdBytes = esp.read(disk, getAll(e, "initrd")[0]!.slice(1));
      // A dracut initramfs with particle-boot inside, unstripped (the Bun payload survives): an
      // optional uncompressed early cpio (microcode), then the zstd main archive.
      const x = join(dir, "initrd-x");
      mkdirSync(x);
      const trailer = initrdBytes.indexOf("TRAILER!!!");
      const zstdAt = initrdBytes.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), trailer < 0 ? 0 : trailer);
      expect(zstdAt, "a zstd-compressed main archive (dracut --zstd)").toBeGreaterThanOrEqual(0);
      writeFileSync(join(dir, "initrd-main.zst"), initrdBytes.subarray(zstdAt));
      sh("bash", ["-c", `cd ${x} && zstd -dc ${dir}/initrd-main.zst | cpio -id --quiet`]);
      const boot = [join(x, "usr/bin/particle-boot"), join(x, "bin/particle-boot")].find(existsSync);
      expect(boot, `particle-boot in the initramfs (${readdirSync(x).join(" ")})`).toBeDefined();
      expect(sha(readFileSync(boot!))).toBe(sha(readFileSync(join(guest, "usr/bin/particle-boot"))));
      expect(getKey(e, "linux")).toBe(`/particle/${sha(readFileSync(join(guest, `boot/vmlinuz-${res.kernel}`)))}/vmlinuz`);
    }, 900_000);
});
