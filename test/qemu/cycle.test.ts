// Issue 4 end to end: `particle install` to a disk image, booted through OVMF and systemd-boot;
// inside the guest: stage B, reboot into B, roll back, reboot into A, clean up; cut the power while
// staging C; stage C and a D whose health check fails (issue 14); D boots but is never marked good,
// and systemd-boot falls back to C; the power is cut in the middle of the cleanup that frees B and
// D; C boots again and the next cleanup finishes. Every boot but D's must be healthy (running, no
// failed unit: lib/qemu.ts).
// Seven boots; they build on each other, so the tests run in order on one disk.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AFTER_CUT, afterCleanupCut, B_MARKER_TEXT, backOnA, C_MARKER_TEXT, copyDisk, D_FAILS, FAILING_CHECK, FAILING_CHECK_SAYS, ON_B, parse, POWER_CUT, prepareCycle, PRIVATE_STORE, FALLBACK_CLEANUP_CUT, STAGE_B, STAGE_C_CUT, timing,
  type CycleInputs, type Parsed,
} from "./lib/cycle.ts";
import { bootDisk, runDisk } from "./lib/ovmf.ts";

// Boot 1 seals (enables fs-verity on) every object of A and then stages a whole trixie tree under
// TCG (every file digested): 5-10 minutes on a loaded host.
const BOOT_TIMEOUT = 1_200_000;
const TEST_TIMEOUT = 1_300_000;
const SETUP_TIMEOUT = 1_800_000;

describe("install, stage, reboot, rollback, cleanup (issue 4)", () => {
  let c: CycleInputs;
  let disk: string;
  const work = mkdtempSync(join(tmpdir(), "particle-cycle-"));
  let a: Parsed;
  let b: Parsed;
  let idA: string;
  let idB: string;

  const boot = async (name: string, script: string, lateDisks: string[] = []) => {
    const r = await runDisk({ name, disk, script, lateDisks, timeoutMs: BOOT_TIMEOUT });
    console.log(`${name}: ${timing(r)}`);
    return r;
  };

  beforeAll(async () => {
    c = await prepareCycle((m) => console.log(m));
    disk = copyDisk(c, join(work, "disk.img"));
  }, SETUP_TIMEOUT);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("boots the installed disk through systemd-boot and stages B in the guest, reusing A's initramfs", async () => {
    const r = await boot("cycle-1-stage-b", STAGE_B, [c.treeB]);
    a = parse(r);
    // Booted from the ESP entry (systemd-boot), not -kernel: the command line is the entry's.
    expect(a.kv.cmdline).toMatch(/particle\.image=[0-9a-f]{64}/);
    expect(a.kv.cmdline).toMatch(/root=UUID=/);
    const before = a.json.before.status;
    idA = before.booted.id;
    expect(idA).toBeTruthy();
    expect(before.staged).toBeNull();
    expect(a.kv.cmdline).toContain(`particle.image=${before.booted.imageDigest}`);
    const after = a.json.after.status;
    expect(after.booted.id).toBe(idA);
    idB = after.staged.id;
    expect(idB).not.toBe(idA);
    expect(after.staged.bootEntry.file).toMatch(/\+3\.conf$/);
    expect(a.json.after.spec.defaultDeployment).toBe(idB);
    // Same kernel, same dracut inputs: the booted initramfs is reused instead of running dracut.
    expect(r.output).toMatch(/reusing the booted deployment's initramfs/);
    expect(after.staged.bootEntry.options).toContain("console=ttyS0");
    console.log(`stage of B in the guest: ${a.kv["stage-seconds"]} s`);
  }, TEST_TIMEOUT);

  it("reboots into B, and status agrees: booted B, rollback A", async () => {
    const r = await boot("cycle-2-on-b", ON_B + PRIVATE_STORE);
    b = parse(r);
    // The store is private on the booted machine (issue 12): objects staged by the host's install
    // and by the guest's own stage of B alike; the booted root still serves its files.
    expect(b.kv["nobody-lists-objects"]).toBe("no");
    expect(b.kv["root-reads-shadow-object"]).toBe("yes");
    expect(b.kv["nobody-reads-shadow-object"]).toBe("no");
    expect(b.kv["nobody-reads-shadow"]).toBe("no");
    expect(b.kv["nobody-reads-os-release"]).toBe("yes");
    expect(b.kv["open-store-files"]).toBe("0");
    expect(b.kv["store-dir-modes"]!.trim()).toBe("700 700 700 700");
    expect(b.kv.marker).toBe(B_MARKER_TEXT.trim());
    expect(b.kv.object).toMatch(/^[0-9a-f]{64}$/);
    expect(b.kv["object-exists"]).toBe("yes");
    const s = b.json.status.status;
    expect(s.booted.id).toBe(idB);
    expect(s.staged).toBeNull();
    expect(s.rollback.id).toBe(idA);
    expect(b.kv.cmdline).toContain(`particle.image=${s.booted.imageDigest}`);
    // systemd-bless-boot marked A's entry good during boot 1 (its counter is gone).
    expect(s.rollback.bootEntry.triesLeft).toBeNull();
    // After `particle rollback`, A is the next boot's default.
    expect(b.json.after.spec.defaultDeployment).toBe(idA);
    expect(b.json.after.status.staged.id).toBe(idA);
  }, TEST_TIMEOUT);

  it("boots A again after the rollback; cleanup keeps booted A and rollback B; the power is cut while staging C", async () => {
    const r = await bootDisk({ name: "cycle-3-back-on-a", disk, script: backOnA(b.kv.object!) + STAGE_C_CUT, lateDisks: [c.treeC], until: POWER_CUT, timeoutMs: BOOT_TIMEOUT });
    console.log(`cycle-3-back-on-a: ${timing(r)}`);
    expect(r.matched, `no power cut point (console log: ${r.logFile})\n${r.output}`).toBe(true);
    const p = parse(r);
    expect(p.json.status.status.booted.id).toBe(idA);
    expect(p.json.status.status.rollback.id).toBe(idB);
    const after = p.json.after.status;
    expect(after.booted.id).toBe(idA);
    expect(after.rollback.id).toBe(idB);
    expect(after.other).toEqual([]);
    // B is the rollback deployment, which cleanup keeps (booted + staged + one rollback), so its
    // object stays until B drops out of that set (the last test).
    expect(p.kv["object-exists"]).toBe("yes");
    // The cut came mid-staging: the stage was still running and had work in tmp/.
    expect(p.kv["stage-running"]).toBe("yes");
    expect(Number(p.kv["tmp-at-cut"])).toBeGreaterThan(0);
  }, TEST_TIMEOUT);

  let idC: string;
  let idD: string;
  it("after the power cut, A boots with no trace of C; C and a failing D are staged", async () => {
    const r = await boot("cycle-4-after-cut", AFTER_CUT, [c.treeC, c.treeD]);
    const p = parse(r);
    const s = p.json.status.status;
    expect(s.booted.id).toBe(idA);
    expect(s.staged).toBeNull();
    expect([s.booted.id, s.rollback?.id, ...s.other.map((d: any) => d.id)].sort()).toEqual([idA, idB].sort());
    expect(p.kv.deployments!.trim().split(" ").sort()).toEqual([idA, idB].sort());
    // One entry each for A and B: none for C, whose staging never finished.
    expect(p.kv.entries!.trim().split(" ")).toHaveLength(2);
    // The next stage empties what the cut left in tmp/.
    expect(p.kv["tmp-after-stage"]).toBe("0");
    idC = p.kv.c!;
    idD = p.kv.d!;
    expect(idC).toBeTruthy();
    expect(idD).toBeTruthy();
    const after = p.json.after;
    expect(after.spec.defaultDeployment).toBe(idD);
    expect(after.status.staged.id).toBe(idD);
    expect(after.status.staged.bootEntry.triesLeft).toBe(1);
  }, TEST_TIMEOUT);

  it("D boots but its health check fails: boot-complete.target is not reached, D is not marked good", async () => {
    // Meant to fail: the harness's rule (running, no failed unit) is checked here instead.
    const r = await bootDisk({ name: "cycle-5-d-fails", disk, script: D_FAILS, timeoutMs: BOOT_TIMEOUT, health: "exempt" });
    console.log(`cycle-5-d-fails: ${timing(r)}`);
    expect(r.exitCode, `console log: ${r.logFile}\n${r.output}`).toBe(0);
    const p = parse(r);
    expect(p.json.status.status.booted.id).toBe(idD);
    expect(r.systemState).toBe("degraded");
    expect(r.failedUnits).toEqual(["particle-health.service"]);
    expect(p.kv.health).toBe("failed");
    expect(p.kv["boot-complete"]).toBe("inactive");
    expect(p.kv["bless-boot"]).toBe("inactive");
    // The journal names the failing check and carries its output.
    const journal = r.output.split("\n").filter((l) => l.startsWith("HEALTH: ")).join("\n");
    expect(journal).toContain(`check 50-particle-test-fails (/${FAILING_CHECK}) FAILED: exit status 1`);
    expect(journal).toContain(`50-particle-test-fails: ${FAILING_CHECK_SAYS}`);
    expect(journal).toMatch(/check 10-particle-root: passed/);
    // systemd-boot spent D's one try (+1 → +0-1) and nothing blessed it.
    const entryD = p.kv.entries!.trim().split(" ").find((e) => e.includes(`-${idD}+`));
    expect(entryD).toMatch(/\+0-1\.conf$/);
  }, TEST_TIMEOUT);

  it("with D's tries used up, the previous deployment C boots; the power is cut in the middle of cleanup", async () => {
    const r = await bootDisk({ name: "cycle-6-fallback-cut", disk, script: FALLBACK_CLEANUP_CUT, until: POWER_CUT, timeoutMs: BOOT_TIMEOUT });
    console.log(`cycle-6-fallback-cut: ${timing(r)}`);
    expect(r.matched, `no power cut point (console log: ${r.logFile})\n${r.output}`).toBe(true);
    const p = parse(r);
    expect(p.kv["marker-c"]).toBe(C_MARKER_TEXT.trim());
    const s = p.json.status.status;
    expect(s.booted.id).toBe(idC);
    expect(p.kv.cmdline).toMatch(new RegExp(`particle\\.deploy=${idC}(\\s|$)`));
    // D is still there, its entry out of tries (ordered last, so not the default).
    const d = [s.rollback, ...s.other].find((x: any) => x?.id === idD);
    expect(d.bootEntry.triesLeft).toBe(0);
    expect(p.json.status.spec.defaultDeployment).toBe(idC);
    // Killed at the fault point (SIGKILL: 128 + 9), with a removed deployment still in tmp/.
    expect(p.kv["cleanup-exit"]).toBe("137");
    expect(Number(p.kv["tmp-at-cut"])).toBeGreaterThan(0);
  }, TEST_TIMEOUT);

  it("after the cut C boots, the store verifies, and the next cleanup frees B's objects and D", async () => {
    const r = await boot("cycle-7-after-cleanup-cut", afterCleanupCut(b.kv.object!));
    const p = parse(r);
    expect(p.json.status.status.booted.id).toBe(idC);
    expect(p.kv["deployments-whole"]).toBe("yes");
    expect(p.kv["tmp-after"]).toBe("0");
    const after = p.json.after.status;
    expect(after.booted.id).toBe(idC);
    expect(after.rollback.id).toBe(idA);
    expect(after.other).toEqual([]);
    expect(p.kv.deployments!.trim().split(" ").sort()).toEqual([idA, idC].sort());
    expect(p.kv.entries).not.toContain(`-${idD}+`);
    expect(p.kv.entries!.trim().split(" ")).toHaveLength(2);
    // B's one unique object is gone with B.
    expect(p.kv["object-b"]).toBe("no");
  }, TEST_TIMEOUT);
});
