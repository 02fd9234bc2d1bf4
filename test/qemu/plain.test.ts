// The QEMU harness and the dracut module, before any deployment: the initramfs keeps particle-boot
// intact, the plain ext4 root boots with the module inside (particle-root.service stays out of the
// way without particle.image), the agent's output and status come back, and Bun runs under TCG.
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeExt4 } from "./lib/disk.ts";
import { guestTree, initramfs, initramfsFile, type GuestTree } from "./lib/guest.ts";
import { boot } from "./lib/qemu.ts";
import { makeTinyTree } from "../host/install-helpers.ts";

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });

const md5 = (b: Buffer) => createHash("md5").update(b).digest("hex");

// A cold cache: mmdebstrap, the tree copy and dracut, minutes each on a loaded host.
const SETUP_TIMEOUT = 1_800_000;

describe("guest, initramfs and harness (plain ext4 root)", () => {
  let g: GuestTree;
  let initrd: string;
  const rootImg = join(tmpdir(), `particle-plain-${process.pid}.img`);

  beforeAll(async () => {
    g = await guestTree();
    initrd = await initramfs(g);
    makeExt4(rootImg, g.dir, 256);
  }, SETUP_TIMEOUT);
  afterAll(() => rmSync(rootImg, { force: true }));

  it("installs particle-boot unstripped and the unit into initrd-root-fs.target", { timeout: 120_000 }, () => {
    // Built without --nostrip while strip is in the tree: the module alone must prevent stripping.
    const inInitrd = initramfsFile(g, initrd, "usr/bin/particle-boot");
    // Against the tree's copy (what dracut read), not dist/, which a concurrent build may replace.
    expect(md5(inInitrd)).toBe(md5(readFileSync(join(g.dir, "usr/bin/particle-boot"))));
    const unit = initramfsFile(g, initrd, "usr/lib/systemd/system/particle-root.service").toString();
    expect(unit).toMatch(/^ConditionKernelCommandLine=particle\.image$/m);
    const listing = initramfsFile(g, initrd).toString();
    expect(listing).toMatch(/ (etc|usr\/lib)\/systemd\/system\/initrd-root-fs\.target\.wants\/particle-root\.service -> \S*particle-root\.service$/m);
    expect(listing).toMatch(/\/erofs\.ko/);
    expect(listing).toMatch(/\/overlay\.ko/);
  });

  it("boots, runs the agent's script, and returns output and status", { timeout: 700_000 }, async () => {
    const r = await boot({
      name: "plain",
      kernel: g.kernel,
      initrd,
      append: "root=/dev/vda rw",
      disks: [rootImg],
      script: [
        "findmnt -no SOURCE,FSTYPE /",
        "echo hello-from-guest",
        // A Bun executable under TCG, on a CPU without AVX (lib/qemu.ts QEMU_CPU).
        "particle --help >/dev/null; echo particle-help=$?",
        "exit 7",
      ].join("\n"),
      timeoutMs: 600_000,
      // Nothing here happens at shutdown.
      poweroff: "forced",
    });
    // Reaching the agent at all means particle-root.service, present in this initramfs, stood aside
    // without particle.image (had it run, particle-boot would have refused and stopped the boot).
    expect(r.exitCode, `console log: ${r.logFile}`).toBe(7);
    expect(r.output).toMatch(/^\/dev\/vda ext4$/m);
    expect(r.output).toMatch(/^hello-from-guest$/m);
    expect(r.output).toMatch(/^particle-help=0$/m);
    expect(r.readyUptime).toBeGreaterThan(1);
  });

  // This host's kernel has no fs-verity, so only a guest shows the install sealing the store itself
  // (issue 13): the image and each object measured by the kernel, the deployment stamped.
  it("particle install under a kernel with fs-verity seals the store, so the first boot has nothing to seal", { timeout: 900_000 }, async () => {
    const work = mkdtempSync(join(tmpdir(), "particle-plain-install-"));
    try {
      makeTinyTree(join(work, "tree"));
      sh("tar", ["-cf", join(work, "tree.tar"), "-C", join(work, "tree"), "."]);
      writeFileSync(join(work, "initrd.img"), "an initramfs\n");
      // The guest has no mtools (install writes the ESP with them); the host's binary needs only libc.
      mkdirSync(join(work, "bin"));
      copyFileSync("/usr/bin/mtools", join(work, "bin", "mtools"));
      for (const m of ["mcopy", "mmd"]) symlinkSync("mtools", join(work, "bin", m));
      const r = await boot({
        name: "plain-install",
        kernel: g.kernel,
        initrd,
        append: "root=/dev/vda rw",
        disks: [rootImg],
        files: { "tree.tar": join(work, "tree.tar"), "initrd.img": join(work, "initrd.img"), bin: join(work, "bin") },
        script: [
          "set -e",
          'export PATH="$PWD/bin:$PATH"',
          "mkdir -p /var/tmp/src && tar -xf tree.tar -C /var/tmp/src",
          "particle install --to-disk /var/tmp/disk.img --size 1300M --source dir:/var/tmp/src --initramfs initrd.img --json >/var/tmp/result.json",
          'echo "RESULT: $(cat /var/tmp/result.json)"',
          "loop=$(losetup --find --show --partscan /var/tmp/disk.img)",
          "udevadm settle; mkdir -p /mnt/r; mount -o ro ${loop}p2 /mnt/r",
          'echo "STAMP: $(test -e /mnt/r/particle/deploy/1/sealed && echo yes || echo no)"',
          'for f in /mnt/r/particle/images/*.erofs $(find /mnt/r/particle/objects -type f); do echo "MEASURE: $(fsverity measure "$f")"; done',
          "umount /mnt/r; losetup -d $loop",
        ].join("\n"),
        timeoutMs: 840_000,
        poweroff: "forced",
      });
      expect(r.exitCode, `console log: ${r.logFile}\n${r.output}`).toBe(0);
      const result = JSON.parse(/^RESULT: (.*)$/m.exec(r.output)![1]!);
      expect(result).toMatchObject({ deployment: "1", verity: "sealed" });
      expect(r.output).toMatch(/^STAMP: yes$/m);
      const measured = [...r.output.matchAll(/^MEASURE: sha256:([0-9a-f]{64}) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const);
      const image = measured.filter(([, p]) => p.startsWith("/mnt/r/particle/images/"));
      expect(image).toEqual([[result.imageDigest, `/mnt/r/particle/images/${result.imageDigest}.erofs`]]);
      const objects = measured.filter(([, p]) => p.startsWith("/mnt/r/particle/objects/"));
      // The tiny tree's non-empty files: each object's name is the digest the kernel now reports.
      expect(objects.length).toBeGreaterThan(3);
      for (const [digest, p] of objects) expect(p).toBe(`/mnt/r/particle/objects/${digest.slice(0, 2)}/${digest.slice(2)}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
