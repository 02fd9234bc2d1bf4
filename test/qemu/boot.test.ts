// Issue 3 end to end: deployments staged on the host with the real CLI, booted in QEMU by the real
// initramfs (dracut + the particle module), checked from the serial console. The boots build on
// each other (first boot seals, later boots see its writes), so the tests run in order and share
// one disk image; four boots in all.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { corruptFile, makeExt4 } from "./lib/disk.ts";
import { deployCmdline, stage, type Staged } from "./lib/deploy.ts";
import { CANARY_PATH, canaryContent, guestTree, initramfs, type GuestTree } from "./lib/guest.ts";
import { boot, run } from "./lib/qemu.ts";

// Under TCG on a loaded 2-core host a boot took 1.5 to 5 minutes; the first one also seals ~500 MB.
const BOOT_TIMEOUT = 900_000;
const FIRST_BOOT_TIMEOUT = 1_500_000;
const TEST_TIMEOUT = BOOT_TIMEOUT + 60_000;

// A cold cache: mmdebstrap, the tree copy and dracut, minutes each on a loaded host.
const SETUP_TIMEOUT = 1_800_000;

describe("booting a composefs deployment (issue 3)", () => {
  let g: GuestTree;
  let initrd: string;
  let d1: Staged;
  let d2: Staged;
  const work = mkdtempSync(join(tmpdir(), "particle-boot-test-"));
  const disk = join(work, "root.img");

  const bootDeploy = (name: string, d: Staged, script: string, extra = "", timeoutMs = BOOT_TIMEOUT) =>
    // "forced": deployments staged on the host and booted by name, no boot entries, so nothing is
    // staged in the guest and particle-finalize has nothing to do at shutdown; each boot's writes are
    // synced by the agent before it powers off.
    run({ name, kernel: g.kernel, initrd, append: deployCmdline(d, extra), disks: [disk], script, timeoutMs, poweroff: "forced" });

  beforeAll(async () => {
    g = await guestTree();
    initrd = await initramfs(g);
    const sysroot = join(work, "sysroot");
    // Two deployments of the same tree: they share every object but have their own /etc upper.
    d1 = stage(g.dir, sysroot);
    d2 = stage(g.dir, sysroot);
    makeExt4(disk, sysroot, 1024);
    rmSync(sysroot, { recursive: true, force: true });
  }, SETUP_TIMEOUT);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("mounts the root as the composefs overlay with verity=require (first boot seals the store)", { timeout: FIRST_BOOT_TIMEOUT + 60_000 }, async () => {
    const r = await bootDeploy("composefs-first", d1, `
      grep ' / ' /proc/mounts | sed 's/^/ROOT: /'
      findmnt -no SOURCE,FSTYPE /sysroot | sed 's/^/SYSROOT: /'
      findmnt -no FSTYPE /etc | sed 's/^/ETC: /'
      findmnt -no SOURCE /var | sed 's/^/VAR: /'
      echo "MARKER: $(tr -d '\\n' </run/particle-booted)"
      img=$(ls /sysroot/particle/images/*.erofs)
      echo "IMAGE: $(fsverity measure "$img")"
      echo edited-on-first-boot >/etc/particle-test-edit
      echo written-by-deployment-${d1.id} >/var/particle-test-shared
    `, "", FIRST_BOOT_TIMEOUT);
    const root = /^ROOT: (\S+) \/ (\S+) (\S+)/m.exec(r.output);
    expect(root, r.output).not.toBeNull();
    expect(root![2]).toBe("overlay");
    expect(root![3]!.split(",")).toContain("verity=require");
    expect(root![3]).toMatch(/metacopy=on/);
    expect(r.output).toMatch(/^SYSROOT: \/dev\/vda ext4$/m);
    expect(r.output).toMatch(/^ETC: overlay$/m);
    expect(r.output).toMatch(/^VAR: \/dev\/vda\[\/particle\/var\]$/m);
    const marker = JSON.parse(/^MARKER: (.*)$/m.exec(r.output)![1]!);
    expect(marker).toMatchObject({ id: d1.id, imageDigest: d1.imageDigest, format: "composefs", verity: "require", overlayVerity: "require", imageCheck: "fs-verity" });
    expect(marker.sealed).toBeGreaterThan(0);
    // The kernel itself measures the image: fs-verity was enabled on it by the first boot.
    expect(r.output).toContain(`IMAGE: sha256:${d1.imageDigest}`);
  });

  it("overlayroot=tmpfs: a tmpfs upper over the whole root", { timeout: TEST_TIMEOUT }, async () => {
    const r = await bootDeploy("composefs-overlayroot", d1, `
      findmnt -no FSTYPE,OPTIONS / | sed 's/^/ROOT: /'
      echo "MARKER: $(tr -d '\\n' </run/particle-booted)"
      echo trace >/etc/particle-test-trace && echo trace >/var/particle-test-trace && echo trace >/particle-test-trace
      echo wrote-traces
    `, "overlayroot=tmpfs");
    expect(r.output).toMatch(/^ROOT: overlay /m);
    expect(JSON.parse(/^MARKER: (.*)$/m.exec(r.output)![1]!)).toMatchObject({ id: d1.id, overlayroot: "tmpfs" });
    expect(r.output).toMatch(/^wrote-traces$/m);
  });

  // The boot after the overlayroot one also checks what the earlier boots left on the disk: d1's
  // /etc upper (read through /sysroot) still has the first boot's edit and no trace of the tmpfs
  // boot, and nothing was left to seal. One boot fewer than checking d1 again by itself.
  it("keeps /etc edits across reboots, overlayroot=tmpfs left no trace; shares /var between deployments, keeps /etc per deployment, and fails reads of a corrupted object with EIO", { timeout: TEST_TIMEOUT }, async () => {
    // Break the canary's object on the disk behind fs-verity's back (QEMU is not running).
    const canary = join(work, "canary");
    writeFileSync(canary, canaryContent());
    const digest = execFileSync("fsverity", ["digest", "--compact", canary], { encoding: "utf8" }).trim();
    corruptFile(disk, `/particle/objects/${digest.slice(0, 2)}/${digest.slice(2)}`);

    const r = await bootDeploy("composefs-second-deployment", d2, `
      echo "MARKER: $(tr -d '\\n' </run/particle-booted)"
      echo "SHARED: $(cat /var/particle-test-shared)"
      [ -e /etc/particle-test-edit ] && echo "EDIT: present" || echo "EDIT: absent"
      # An intact file through the same overlay still reads.
      head -c 4 /usr/bin/particle-boot | od -c | head -1 | sed 's/^/INTACT: /'
      cat /${CANARY_PATH} >/dev/null 2>/run/canary.err; echo "CANARY: rc=$? $(cat /run/canary.err)"
      echo "D1-EDIT: $(cat /sysroot/particle/deploy/${d1.id}/etc/upper/particle-test-edit)"
      for f in /sysroot/particle/deploy/${d1.id}/etc/upper/particle-test-trace /var/particle-test-trace /particle-test-trace; do
        if [ -e $f ]; then echo "TRACE: $f"; fi
      done
    `);
    expect(JSON.parse(/^MARKER: (.*)$/m.exec(r.output)![1]!)).toMatchObject({ id: d2.id, imageDigest: d1.imageDigest });
    expect(r.output).toMatch(new RegExp(`^SHARED: written-by-deployment-${d1.id}$`, "m"));
    expect(r.output).toMatch(/^EDIT: absent$/m);
    expect(r.output).toMatch(/^INTACT: 0000000 177\s+E\s+L\s+F/m);
    expect(r.output).toMatch(/^CANARY: rc=1 .*Input\/output error/m);
    expect(r.output).toMatch(/^D1-EDIT: edited-on-first-boot$/m);
    expect(r.output).not.toMatch(/^TRACE:/m);
    // Sealing happened once, on the first boot: d2 shares every object and had nothing to seal.
    expect(JSON.parse(/^MARKER: (.*)$/m.exec(r.output)![1]!)).toMatchObject({ sealed: 0, overlayroot: "disabled" });
  });

  it("refuses a wrong particle.image with a message naming it, and stops in emergency mode", { timeout: TEST_TIMEOUT }, async () => {
    const wrong = "0".repeat(63) + "1";
    const r = await boot({
      name: "composefs-wrong-image",
      kernel: g.kernel,
      initrd,
      append: deployCmdline({ id: d1.id, imageDigest: wrong }),
      disks: [disk],
      script: "echo should-not-run",
      timeoutMs: BOOT_TIMEOUT,
      until: /emergency mode/i,
      // Meant to fail: the boot stops in emergency mode before the agent could report.
      health: "exempt",
    });
    expect(r.matched, `console log: ${r.logFile}`).toBe(true);
    expect(r.console).toMatch(new RegExp(`particle-boot: FAILED: .*particle\\.image=${wrong}`));
    expect(r.console).not.toContain("@@PARTICLE-AGENT-READY");
  });
});
