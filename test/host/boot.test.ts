// particle-boot, the compiled binary, against staged sysroots on the host kernel (as root).
// The host has no fs-verity: boots use particle.verity=optional/off or the default, and
// `require` must be refused with a clear message.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_TREE, stageFixture, type Fixture } from "../../boot/test/fixture.ts";
import { buildBoot, child, dropArena, findmnt, makeArena, mountPointsUnder, runBoot, type Arena } from "../../boot/test/arena.ts";

let phys: string;
const fx: Record<string, Fixture> = {};
const arenas: Arena[] = [];

beforeAll(() => {
  buildBoot();
  phys = mkdtempSync(join(tmpdir(), "particle-boot-phys-"));
  fx.c1 = stageFixture(phys, "c1", "composefs");
  fx.e1 = stageFixture(phys, "e1", "erofs");
  fx.q1 = stageFixture(phys, "q1", "squashfs");
  fx.o1 = stageFixture(phys, "o1", "composefs", [...DEFAULT_TREE, { path: "etc/overlayroot.conf", content: '# test\noverlayroot="tmpfs:swap=1,recurse=0"\n' }]);
  fx.t1 = stageFixture(phys, "t1", "erofs", [...DEFAULT_TREE, { path: "etc/tampered", content: "x" }]);
  fx.n1 = stageFixture(phys, "n1", "erofs", DEFAULT_TREE.filter((f) => f.path !== "sysroot"));
  // Trees as staging leaves them (tree/dpkg-db.ts): the database in /usr, /var/lib/dpkg a link to it.
  const dpkgTree = (pkg: string) => [...DEFAULT_TREE, { path: "usr/lib/sysimage/dpkg/status", content: `Package: ${pkg}\nStatus: install ok installed\n` }, { path: "var/lib/dpkg", symlink: "../../usr/lib/sysimage/dpkg" }];
  fx.p1 = stageFixture(phys, "p1", "composefs", dpkgTree("one"));
  fx.p2 = stageFixture(phys, "p2", "erofs", dpkgTree("two"));
  // Flip one byte of t1's image: its name (and deployment.json) still claim the old digest.
  const fd = openSync(fx.t1.image, "r+");
  writeSync(fd, Buffer.from([0x5a]), 0, 1, 2000);
  closeSync(fd);
});

afterEach(() => {
  while (arenas.length) dropArena(arenas.pop()!);
});

afterAll(() => {
  if (phys) rmSync(phys, { recursive: true, force: true });
});

function arena(): Arena {
  const a = makeArena(phys, "boot");
  arenas.push(a);
  return a;
}

const cmd = (f: Fixture, extra = "") => `BOOT_IMAGE=/vmlinuz root=/dev/vda2 ro quiet particle.deploy=${f.id} particle.image=${f.digest} ${extra}`.trim();

function boot(a: Arena, cmdline: string, target = a.sysroot) {
  return runBoot(["--sysroot", a.sysroot, "--cmdline", cmdline, "--target", target, "--run-dir", a.run]);
}

function expectTreeContent(root: string) {
  expect(readFileSync(join(root, "usr/bin/hello"), "utf8")).toBe("#!/bin/sh\necho hello\n");
  expect(statSync(join(root, "usr/bin/hello")).mode & 0o777).toBe(0o755);
  expect(readFileSync(join(root, "usr/share/blob.bin")).equals(Buffer.alloc(20000, 7))).toBe(true);
  expect(readFileSync(join(root, "usr/share/empty")).length).toBe(0);
  expect(readlinkSync(join(root, "usr/lib/link"))).toBe("../bin/hello");
  expect(readFileSync(join(root, "etc/hostname"), "utf8")).toBe("particle-test\n");
}

const marker = (a: Arena) => JSON.parse(readFileSync(join(a.run, "particle-booted"), "utf8"));

describe("composefs deployment, target = sysroot (the initramfs case)", () => {
  it("mounts the composefs overlay with /etc, /var and the physical root under it", () => {
    const a = arena();
    const r = boot(a, cmd(fx.c1!, "particle.verity=optional"));
    expect(r.stderr).toMatch(/WARNING: fs-verity is not available/);
    expect(r.status, r.stderr).toBe(0);

    const root = findmnt(a.sysroot)!;
    expect(root.fstype).toBe("overlay");
    expect(root.options).toMatch(/(^|,)ro(,|$)/);
    expect(root.options).toContain("metacopy=on");
    expect(root.options).toContain("redirect_dir=on");
    expect(root.options).toMatch(/lowerdir\+=[^,]+,datadir\+=[^,]*\/particle\/objects|lowerdir=[^,]+::[^,]*\/particle\/objects/);
    expect(root.options).not.toContain("verity=");

    const sys = child(root, join(a.sysroot, "sysroot"))!;
    expect(sys.fstype).toBe("ext4");
    expect(existsSync(join(a.sysroot, "sysroot/particle/deploy/c1/deployment.json"))).toBe(true);

    const etc = child(root, join(a.sysroot, "etc"))!;
    expect(etc.fstype).toBe("overlay");
    expect(etc.options).toContain("upperdir=");
    expect(etc.options).toContain("/particle/deploy/c1/etc/upper");
    const v = child(root, join(a.sysroot, "var"))!;
    expect(v.source).toContain("/particle/var");

    expectTreeContent(a.sysroot);
    // The work area is gone: nothing is left mounted in run/.
    expect(mountPointsUnder(a.run)).toEqual([]);
    expect(marker(a)).toMatchObject({ id: "c1", imageDigest: fx.c1!.digest, format: "composefs", verity: "optional", overlayVerity: "off", imageCheck: "userspace-fs-verity", overlayroot: "disabled" });
  });

  it("keeps /etc edits and /var across a reboot", () => {
    const a = arena();
    expect(boot(a, cmd(fx.c1!, "particle.verity=off")).status).toBe(0);
    writeFileSync(join(a.sysroot, "etc/hostname"), "edited\n");
    writeFileSync(join(a.sysroot, "var/state"), "kept\n");
    expect(readFileSync(join(phys, "particle/deploy/c1/etc/upper/hostname"), "utf8")).toBe("edited\n");
    dropArena(arenas.pop()!);

    const b = arena();
    const r = boot(b, cmd(fx.c1!, "particle.verity=off"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("WARNING");
    expect(readFileSync(join(b.sysroot, "etc/hostname"), "utf8")).toBe("edited\n");
    expect(readFileSync(join(b.sysroot, "var/state"), "utf8")).toBe("kept\n");
    expect(marker(b)).toMatchObject({ verity: "off", overlayVerity: "off" });
    rmSync(join(phys, "particle/deploy/c1/etc/upper/hostname"));
    rmSync(join(phys, "particle/var/state"));
  });

  it("finds the deployment by its image digest when the command line has no particle.deploy (a sealed UKI's)", () => {
    const a = arena();
    const r = boot(a, `root=LABEL=particle-root rw particle.image=${fx.c1!.digest} particle.verity=optional`);
    expect(r.status, r.stderr).toBe(0);
    expect(marker(a)).toMatchObject({ id: "c1", imageDigest: fx.c1!.digest });
    expectTreeContent(a.sysroot);
  });

  it("without particle.verity, boots without verity on this host and says so", () => {
    const a = arena();
    const r = boot(a, cmd(fx.c1!));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/WARNING: fs-verity is not available .*booting WITHOUT file verification/);
    expect(marker(a)).toMatchObject({ verity: "optional", overlayVerity: "off" });
  });
});

describe("the dpkg database of the booted deployment (issue 14)", () => {
  const status = (root: string) => readFileSync(join(root, "var/lib/dpkg/status"), "utf8");
  const dpkgDir = () => join(phys, "particle/var/lib/dpkg");
  afterEach(() => {
    // Unmount before removing: this hook runs before the file's own.
    while (arenas.length) dropArena(arenas.pop()!);
    rmSync(join(phys, "particle/var/lib"), { recursive: true, force: true });
  });

  it("is bound read-only over the shared /var/lib/dpkg: each deployment lists its own packages", () => {
    const a = arena();
    const r = boot(a, cmd(fx.p1!, "particle.verity=off"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("WARNING");
    const m = child(child(findmnt(a.sysroot)!, join(a.sysroot, "var"))!, join(a.sysroot, "var/lib/dpkg"))!;
    expect(m.options).toMatch(/(^|,)ro(,|$)/);
    expect(status(a.sysroot)).toMatch(/^Package: one$/m);
    // apt and dpkg cannot write it: packages come through `particle layer`.
    expect(() => writeFileSync(join(a.sysroot, "var/lib/dpkg/lock-frontend"), "")).toThrow(/EROFS/);
    dropArena(arenas.pop()!);
    // Only an empty mount point stays in the persistent /var.
    expect(readdirSync(dpkgDir())).toEqual([]);

    const b = arena();
    expect(boot(b, cmd(fx.p2!, "particle.verity=off")).status).toBe(0);
    expect(status(b.sysroot)).toMatch(/^Package: two$/m);
    dropArena(arenas.pop()!);
    // Back to the first (a rollback): its set again.
    const c = arena();
    expect(boot(c, cmd(fx.p1!, "particle.verity=off")).status).toBe(0);
    expect(status(c.sysroot)).toMatch(/^Package: one$/m);
  });

  it("a tree staged before the move gets no mount; a persistent /var/lib/dpkg that is no directory is left alone, with a warning", () => {
    const a = arena();
    expect(boot(a, cmd(fx.c1!, "particle.verity=off")).status).toBe(0);
    expect(child(child(findmnt(a.sysroot)!, join(a.sysroot, "var"))!, join(a.sysroot, "var/lib/dpkg"))).toBeUndefined();
    dropArena(arenas.pop()!);

    mkdirSync(join(phys, "particle/var/lib"), { recursive: true });
    symlinkSync("/nowhere", dpkgDir());
    const b = arena();
    const r = boot(b, cmd(fx.p1!, "particle.verity=off"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/WARNING: \/var\/lib\/dpkg in the persistent \/var is not a directory/);
    expect(readlinkSync(dpkgDir())).toBe("/nowhere");
  });
});

describe("other root formats", () => {
  it("full erofs image, separate target: the physical root is bound at <target>/sysroot", () => {
    const a = arena();
    const target = join(a.dir, "newroot");
    mkdirSync(target);
    const r = boot(a, cmd(fx.e1!, "particle.verity=optional"), target);
    expect(r.status, r.stderr).toBe(0);
    const root = findmnt(target)!;
    expect(root.fstype).toBe("erofs");
    expect(root.source).toBe(fx.e1!.image.replace(phys, a.sysroot));
    expect(child(root, join(target, "sysroot"))).toBeDefined();
    expect(child(root, join(target, "etc"))!.fstype).toBe("overlay");
    expectTreeContent(target);
    // The sysroot itself was not touched.
    expect(findmnt(a.sysroot)!.fstype).toBe("ext4");
  });

  it("squashfs through a loop device set up with ioctls", () => {
    const a = arena();
    const r = boot(a, cmd(fx.q1!, "particle.verity=off"));
    expect(r.status, r.stderr).toBe(0);
    const root = findmnt(a.sysroot)!;
    expect(root.fstype).toBe("squashfs");
    expect(root.source).toMatch(/^\/dev\/loop\d+$/);
    expect(readFileSync(`/sys/block/${root.source.slice(5)}/loop/autoclear`, "utf8").trim()).toBe("1");
    expect(readFileSync(`/sys/block/${root.source.slice(5)}/ro`, "utf8").trim()).toBe("1");
    expectTreeContent(a.sysroot);
    expect(marker(a)).toMatchObject({ format: "squashfs", imageCheck: "sha256" });
  });
});

describe("overlayroot", () => {
  it("overlayroot=tmpfs: one tmpfs upper over the whole root; nothing reaches the disk", () => {
    const a = arena();
    const r = boot(a, cmd(fx.c1!, "particle.verity=off overlayroot=tmpfs"));
    expect(r.status, r.stderr).toBe(0);
    const root = findmnt(a.sysroot)!;
    expect(root.fstype).toBe("overlay");
    expect(root.options).toMatch(/(^|,)rw(,|$)/);
    expect(root.options).toContain("upperdir=");
    // No /etc overlay and no /var bind: only the physical root below.
    expect(root.children?.map((c) => c.target)).toEqual([join(a.sysroot, "sysroot")]);
    expectTreeContent(a.sysroot);
    writeFileSync(join(a.sysroot, "etc/hostname"), "volatile\n");
    writeFileSync(join(a.sysroot, "usr/new"), "volatile\n");
    expect(existsSync(join(phys, "particle/deploy/c1/etc/upper/hostname"))).toBe(false);
    expect(marker(a)).toMatchObject({ overlayroot: "tmpfs" });
    dropArena(arenas.pop()!);

    const b = arena();
    expect(boot(b, cmd(fx.c1!, "particle.verity=off")).status).toBe(0);
    expect(readFileSync(join(b.sysroot, "etc/hostname"), "utf8")).toBe("particle-test\n");
    expect(existsSync(join(b.sysroot, "usr/new"))).toBe(false);
  });

  it("particle.etc=transient (sealed strict mode): /etc edits vanish, the disk's /etc upper is not used, /var persists", () => {
    // What an offline attacker (or an earlier persistent boot) left in the deployment's upper.
    mkdirSync(join(phys, "particle/deploy/c1/etc/upper"), { recursive: true });
    writeFileSync(join(phys, "particle/deploy/c1/etc/upper/planted"), "planted\n");
    try {
      const a = arena();
      const r = boot(a, cmd(fx.c1!, "particle.verity=off particle.etc=transient"));
      expect(r.status, r.stderr).toBe(0);
      expect(existsSync(join(a.sysroot, "etc/planted"))).toBe(false);
      expect(readFileSync(join(a.sysroot, "etc/hostname"), "utf8")).toBe("particle-test\n");
      writeFileSync(join(a.sysroot, "etc/hostname"), "volatile\n");
      writeFileSync(join(a.sysroot, "var/strict-state"), "kept\n");
      expect(existsSync(join(phys, "particle/deploy/c1/etc/upper/hostname"))).toBe(false);
      expect(marker(a)).toMatchObject({ etc: "transient", overlayroot: "disabled" });
      // No EFI variables on this host: no ESP mount, said as a warning, the boot goes on.
      expect(r.stderr).toMatch(/particle\.etc=transient: the boot loader reported no ESP/);
      dropArena(arenas.pop()!);

      const b = arena();
      expect(boot(b, cmd(fx.c1!, "particle.verity=off particle.etc=transient")).status).toBe(0);
      expect(readFileSync(join(b.sysroot, "etc/hostname"), "utf8")).toBe("particle-test\n");
      expect(readFileSync(join(b.sysroot, "var/strict-state"), "utf8")).toBe("kept\n");
    } finally {
      rmSync(join(phys, "particle/deploy/c1/etc/upper/planted"), { force: true });
      rmSync(join(phys, "particle/var/strict-state"), { force: true });
    }
  });

  it("is read from the deployment's /etc/overlayroot.conf, and the command line wins", () => {
    const a = arena();
    expect(boot(a, cmd(fx.o1!, "particle.verity=off")).status).toBe(0);
    expect(marker(a)).toMatchObject({ id: "o1", overlayroot: "tmpfs" });
    dropArena(arenas.pop()!);

    const b = arena();
    expect(boot(b, cmd(fx.o1!, "particle.verity=off overlayroot=disabled")).status).toBe(0);
    expect(marker(b)).toMatchObject({ id: "o1", overlayroot: "disabled" });
    expect(child(findmnt(b.sysroot)!, join(b.sysroot, "etc"))!.fstype).toBe("overlay");
  });
});

describe("a physical root mounted read-only by the initramfs (`ro` on the command line)", () => {
  const roArena = () => {
    const a = arena();
    execFileSync("mount", ["-o", "remount,bind,ro", a.sysroot]);
    expect(findmnt(a.sysroot)!.options).toMatch(/^ro,/);
    return a;
  };

  it("is made read-write for the persistent /etc and /var", () => {
    const a = roArena();
    const r = boot(a, cmd(fx.c1!, "particle.verity=optional"));
    expect(r.status, r.stderr).toBe(0);
    expect(child(findmnt(a.sysroot)!, join(a.sysroot, "sysroot"))!.options).toMatch(/^rw,/);
    writeFileSync(join(a.sysroot, "var/ro-test"), "ok");
    rmSync(join(a.sysroot, "var/ro-test"));
  });

  it("stays read-only under overlayroot=tmpfs", () => {
    const a = roArena();
    const r = boot(a, cmd(fx.c1!, "particle.verity=optional overlayroot=tmpfs"));
    expect(r.status, r.stderr).toBe(0);
    expect(child(findmnt(a.sysroot)!, join(a.sysroot, "sysroot"))!.options).toMatch(/^ro,/);
    writeFileSync(join(a.sysroot, "etc/x"), "volatile");
  });
});

describe("overlayroot=device", () => {
  it("puts the upper in overlay/ on the device, as Ubuntu does, and it persists", () => {
    const a = arena();
    const img = join(a.dir, "upper.img");
    execFileSync("truncate", ["-s", "16M", img]);
    execFileSync("mkfs.ext4", ["-q", "-F", img]);
    const dev = execFileSync("losetup", ["--find", "--show", img], { encoding: "utf8" }).trim();
    try {
      const r = boot(a, cmd(fx.c1!, `particle.verity=off overlayroot=device:dev=${dev},fstype=ext4,timeout=5`));
      expect(r.status, r.stderr).toBe(0);
      expect(findmnt(a.sysroot)!.options).toContain("upperdir=");
      writeFileSync(join(a.sysroot, "etc/on-device"), "kept");
      expect(marker(a)).toMatchObject({ overlayroot: "device" });
      dropArena(arenas.pop()!);
      const check = mkdtempSync(join(tmpdir(), "particle-dev-check-"));
      execFileSync("mount", ["-o", "ro", dev, check]);
      try {
        expect(readFileSync(join(check, "overlay/etc/on-device"), "utf8")).toBe("kept");
        expect(existsSync(join(check, "overlay-workdir"))).toBe(true);
      } finally {
        execFileSync("umount", [check]);
        rmSync(check, { recursive: true });
      }
    } finally {
      execFileSync("losetup", ["-d", dev]);
    }
  });
});

describe("refusals: non-zero exit, a message naming the cause, nothing left mounted", () => {
  const refused = (a: Arena, r: ReturnType<typeof boot>, msg: RegExp) => {
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^particle-boot: FAILED: /m);
    expect(r.stderr).toMatch(msg);
    expect(mountPointsUnder(a.dir)).toEqual([a.dir, a.sysroot]);
    expect(findmnt(a.sysroot)!.fstype).toBe("ext4");
    expect(existsSync(join(a.run, "particle-booted"))).toBe(false);
  };

  it("a particle.image that is not the deployment's", () => {
    const a = arena();
    refused(a, boot(a, `particle.deploy=c1 particle.image=${fx.e1!.digest} particle.verity=optional`), /particle\.image=[0-9a-f]{64} does not match deployment c1/);
  });

  it("an image whose content does not match its digest", () => {
    const a = arena();
    refused(a, boot(a, cmd(fx.t1!, "particle.verity=optional")), /fs-verity \(computed in userspace\) digest is [0-9a-f]{64}, expected [0-9a-f]{64}/);
  });

  it("the same with verity off: the pinned digest is still checked", () => {
    const a = arena();
    refused(a, boot(a, cmd(fx.t1!, "particle.verity=off")), /expected [0-9a-f]{64}.*refusing to mount it/);
  });

  it("particle.verity=require on a filesystem without fs-verity", () => {
    const a = arena();
    refused(a, boot(a, cmd(fx.c1!, "particle.verity=require")), /particle\.verity=require: the filesystem holding .* does not support fs-verity/);
  });

  it.each([
    ["no particle.image", "ro quiet", /particle\.image: missing/],
    ["a sealed command line (no particle.deploy) naming an image no deployment has", `root=LABEL=particle-root rw particle.image=${"0".repeat(64)}`, /particle\.image=0{64}: no deployment of this image under /],
    ["bad particle.image", "particle.deploy=c1 particle.image=xyz", /particle\.image=xyz: invalid/],
    ["unknown deployment", `particle.deploy=zz particle.image=${"0".repeat(64)}`, /particle\.deploy=zz: no deployment/],
    ["bad particle.verity", `particle.deploy=c1 particle.image=${"0".repeat(64)} particle.verity=yes`, /particle\.verity=yes: invalid/],
    ["bad overlayroot", `particle.deploy=c1 particle.image=${"0".repeat(64)} overlayroot=ramfs`, /overlayroot="ramfs": unknown mode/],
  ])("%s", (_, cmdline, msg) => {
    const a = arena();
    refused(a, boot(a, cmdline), msg);
  });

  it("an image without a /sysroot directory (the physical root has nowhere to go)", () => {
    const a = arena();
    refused(a, boot(a, cmd(fx.n1!, "particle.verity=off")), /mount point .*\/sysroot does not exist \(the deployment's tree must contain this directory\)/);
    expect(existsSync(join(a.sysroot, "particle/deploy/n1/deployment.json"))).toBe(true);
  });

  it("an overlayroot device that never appears", () => {
    const a = arena();
    const r = boot(a, cmd(fx.c1!, "particle.verity=off overlayroot=device:dev=/dev/particle-missing,timeout=1"));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/overlayroot=device: \/dev\/particle-missing did not appear within 1 s/);
    expect(mountPointsUnder(a.dir)).toEqual([a.dir, a.sysroot]);
  });

  it("a sysroot that is not a mount point cannot also be the target", () => {
    const a = arena();
    const r = runBoot(["--sysroot", phys, "--cmdline", cmd(fx.e1!, "particle.verity=off"), "--run-dir", a.run]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--sysroot .* is not a mount point/);
    expect(mountPointsUnder(a.run)).toEqual([]);
    expect(mountPointsUnder(phys)).toEqual([]);
  });

  it("bad options are refused with usage", () => {
    const r = runBoot(["--sysroot", "relative"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--sysroot relative: must be an absolute path/);
  });
});
