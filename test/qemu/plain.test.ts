// The QEMU harness and the dracut module, before any deployment: the initramfs keeps particle-boot
// intact, the plain ext4 root boots with the module inside (particle-root.service stays out of the
// way without particle.image), the agent's output and status come back, and Bun runs under TCG.
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeExt4 } from "./lib/disk.ts";
import { guestTree, initramfs, initramfsFile, type GuestTree } from "./lib/guest.ts";
import { boot } from "./lib/qemu.ts";

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
});
