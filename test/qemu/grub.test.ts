// Issue 5 end to end: a disk from `particle install --bootloader grub`, booted through OVMF and GRUB
// EFI, whose menu particle generated. B is staged onto the disk (from the host, with the same
// `particle stage` a booted system runs; the issue-4 test stages in the guest), GRUB boots it with
// its tries counted and particle-bless.service marks it good; `particle rollback --once` boots A
// once through next_entry; `particle rollback` makes A the default; then a deployment C whose
// health check fails (issue 14: it boots, particle-health.service fails, boot-complete.target is
// not reached, particle-bless never runs) uses up its tries and GRUB falls back to A.
// C gets one try instead of three (as D in the systemd-boot cycle): every failing try is the same
// boot, and the countdown itself is GRUB's script, checked after the one try. Host tests check that
// staging writes boot_counter=3. Then the power is cut in the middle of a cleanup, and A boots again.
// Five full boots, in order, on one disk; every one but C's must be healthy (running, no failed
// unit: lib/qemu.ts).
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { B_MARKER, B_MARKER_TEXT, CLEANUP_CUT, DEPLOYMENTS_WHOLE, FAILING_CHECK, FAILING_CHECK_SAYS, FAILING_CHECK_TEXT, HEALTH_FAILED, parse, POWER_CUT, timing } from "./lib/cycle.ts";
import { guestTree, initramfs, sh, type GuestTree } from "./lib/guest.ts";
import { espEnv, espMenu, installedGrubDisk, onDisk, treeB } from "./lib/grub.ts";
import { bootDisk, runDisk } from "./lib/ovmf.ts";
import { writeDeploymentEntry } from "../../runtime/src/bootloader/deploy-entry.ts";
import { particleEntries, readEntries } from "../../runtime/src/bootloader/entries.ts";
import { extraArgsOf, rootUuidOf } from "../../runtime/src/deployments/make-bootable.ts";
import { readManifests } from "../../runtime/src/deployments/read.ts";
import { encodeGrubEnv, parseGrubEnv, startCounting } from "../../runtime/src/bootloader/grub-env.ts";
import { writeFileAtomic } from "../../runtime/src/system/atomic.ts";

const BOOT_TIMEOUT = 600_000;
const TEST_TIMEOUT = 700_000;
const SETUP_TIMEOUT = 1_500_000;
/** C's tries (see the header). */
const C_TRIES = 1;

const PRELUDE = `set -euo pipefail
j() { echo "JSON:$1:$(tr -d '\\n')"; }
kv() { echo "KV:$1:$2"; }
env_json() { particle grub-menu --env | awk -F= 'BEGIN{printf "{"} {if(NR>1)printf ","; v=substr($0,length($1)+2); printf "\\"%s\\":\\"%s\\"", $1, v} END{print "}"}'; }
kv cmdline "$(cat /proc/cmdline)"
`;

/** Boot 1, on B: GRUB has counted one try; bless (the service, waited for) marks B good. */
const ON_B = `${PRELUDE}
kv marker "$(cat /${B_MARKER})"
particle status --json | j status
# particle-bless.service ran on its own once boot-complete.target was reached: the agent waited
# for the boot to finish, and nothing starts the unit here.
kv bless-state "$(systemctl is-active particle-bless.service)"
journalctl -b -u particle-bless.service -o cat --no-pager | tail -3
env_json | j env
particle rollback --once
env_json | j env-once
`;

/** Boot 2, on A through next_entry: the default is still B; roll back for good. */
const ONCE_A = `${PRELUDE}
[ -e /${B_MARKER} ] && kv marker yes || kv marker no
env_json | j env
particle status --json | j status
particle rollback
particle status --json | j after
env_json | j env-after
`;

/**
 * The boot of C: its health check fails, so nothing blesses it; GRUB already spent the try. C was
 * staged from the host with no /etc carried over, so it does not mount the ESP (A's fstab is in
 * A's /etc): the host reads the counters from the disk instead.
 */
const C_FAILS = `${PRELUDE}
particle status --json | j status
${HEALTH_FAILED}
`;

/**
 * Boot 6, on A after C's tries ran out: A must not bless C. Then C is called off (rollback) and the
 * cleanup that follows is stopped after it removed the entries, regenerated the menu and moved the
 * first deployment aside; the power is cut there (POWER_CUT), as in the systemd-boot cycle.
 */
const FALLBACK_A_CLEANUP_CUT = `${PRELUDE}
systemctl start particle-bless.service
env_json | j env
particle status --json | j status
particle rollback
${CLEANUP_CUT}`;

/** Boot 7, after the cut: A boots through GRUB, its deployments are whole, the next cleanup finishes. */
const AFTER_CLEANUP_CUT = `${PRELUDE}
particle status --json | j status
${DEPLOYMENTS_WHOLE}
particle cleanup
kv tmp-after "$(ls /sysroot/particle/tmp | wc -l)"
kv deployments "$(ls /sysroot/particle/deploy | tr '\\n' ' ')"
particle status --json | j after
`;

const bootedArg = (cmdline: string, key: string) => new RegExp(`(?:^| )${key.replace(".", "\\.")}=(\\S+)`).exec(cmdline)?.[1];

describe("GRUB: install, stage, counted boot, bless, rollback --once, rollback, fallback (issue 5)", () => {
  const work = mkdtempSync(join("/var/tmp", "particle-grub-qemu-"));
  let disk: string;
  let A: string;
  let B: string;
  let C: string;
  let g: GuestTree;
  let initrd: string;
  const log = (m: string) => console.log(m);

  beforeAll(async () => {
    g = await guestTree();
    initrd = await initramfs(g);
    const installed = await installedGrubDisk(g, initrd, log);
    disk = join(work, "disk.img");
    sh("cp", ["--sparse=always", installed, disk]);
    A = /--id particle-(\S+) \{/.exec(espMenu(disk))![1]!;
    const b = treeB(g, join(work, "tree-b"), B_MARKER, B_MARKER_TEXT);
    const [out] = onDisk(disk, A, [["stage", `dir:${b}`, "--version", "B", "--json"]], log);
    B = JSON.parse(out!).id;
    sh("rm", ["-rf", b]);
  }, SETUP_TIMEOUT);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("staging B made it GRUB's default with 3 tries and A as the fallback", () => {
    const menu = espMenu(disk);
    expect(menu).toMatch(new RegExp(`^set default=particle-${B}$`, "m"));
    expect(menu).toMatch(new RegExp(`^set fallback=particle-${A}$`, "m"));
    expect(Object.fromEntries(espEnv(disk))).toEqual({ particle_counted: B, boot_counter: "3", boot_success: "0" });
  });

  it("boots B through GRUB, which counted the try; particle-bless marks B good; rollback --once sets next_entry", async () => {
    const r = await runDisk({ name: "grub-1-on-b", disk, script: ON_B, timeoutMs: BOOT_TIMEOUT });
    console.log(`grub-1-on-b: ${timing(r)}`);
    const p = parse(r);
    // GRUB's linux command puts BOOT_IMAGE= first (systemd-boot passes initrd= instead).
    expect(p.kv.cmdline).toMatch(/^BOOT_IMAGE=\/particle\/[0-9a-f]{64}\/vmlinuz /);
    expect(bootedArg(p.kv.cmdline!, "particle.deploy")).toBe(B);
    expect(p.kv.marker).toBe(B_MARKER_TEXT.trim());
    expect(p.json.status.status.booted.id).toBe(B);
    expect(p.json.status.status.rollback.id).toBe(A);
    expect(p.kv["bless-state"]).toBe("active");
    // GRUB saved 3 → 2 before booting B; bless then dropped the counter.
    expect(p.json.env).toEqual({ particle_counted: B, boot_success: "1" });
    expect(r.console).not.toMatch(/error: .*particle\.env/);
    expect(p.json["env-once"]).toEqual({ particle_counted: B, boot_success: "1", next_entry: `particle-${A}` });
  }, TEST_TIMEOUT);

  it("boots A once through next_entry (cleared by GRUB), then rollback makes A the default", async () => {
    const r = await runDisk({ name: "grub-2-once-a", disk, script: ONCE_A, timeoutMs: BOOT_TIMEOUT });
    console.log(`grub-2-once-a: ${timing(r)}`);
    const p = parse(r);
    expect(bootedArg(p.kv.cmdline!, "particle.deploy")).toBe(A);
    expect(p.kv.marker).toBe("no");
    expect(p.json.env).toEqual({ particle_counted: B, boot_success: "1", next_entry: "" });
    // The one-shot did not change the default.
    expect(p.json.status.spec.defaultDeployment).toBe(B);
    expect(p.json.after.spec.defaultDeployment).toBe(A);
    expect(p.json["env-after"]).toEqual({ next_entry: "" });
    expect(espMenu(disk)).toMatch(new RegExp(`^set default=particle-${A}$`, "m"));
  }, TEST_TIMEOUT);

  it("stages C, whose health check fails: each GRUB boot of it uses a try, nothing blesses it, and when none is left GRUB falls back to A", async () => {
    // The guest sealed the objects (fs-verity), which the host kernel cannot read: `particle stage`
    // adds C (the guest tree plus a failing health check) to the store, and its entry is written
    // in-process by the module stage uses, with A's kernel and initramfs (the same bytes C has).
    const tree = treeB(g, join(work, "tree-c"), FAILING_CHECK, FAILING_CHECK_TEXT);
    chmodSync(join(tree, FAILING_CHECK), 0o755);
    onDisk(disk, A, [["stage", `dir:${tree}`, "--version", "C-unhealthy", "--json"]], log, (root, esp, [out]) => {
      C = JSON.parse(out!).id;
      const a = particleEntries(readEntries(esp)).find((e) => e.deployId === A)!;
      const manifest = readManifests(root).find((m) => m.id === C)!;
      writeDeploymentEntry({ esp, manifest, rootUuid: rootUuidOf(a.options)!, kernel: g.kernel, initrd, extraArgs: extraArgsOf(a.options) });
      expect(parseGrubEnv(readFileSync(join(esp, "grub/particle.env"))).get("boot_counter")).toBe("3");
      writeFileAtomic(join(esp, "grub/particle.env"), encodeGrubEnv(startCounting(parseGrubEnv(readFileSync(join(esp, "grub/particle.env"))), C, C_TRIES)));
    }, { storeOnly: true });
    sh("rm", ["-rf", tree]);
    const menu = espMenu(disk);
    expect(menu).toMatch(new RegExp(`^set default=particle-${C}$`, "m"));
    expect(menu).toMatch(new RegExp(`^set fallback=particle-${A}$`, "m"));
    expect(espEnv(disk).get("boot_counter")).toBe(String(C_TRIES));
    for (let left = C_TRIES - 1; left >= 0; left--) {
      // Meant to fail: the harness's rule (running, no failed unit) is checked here instead.
      const r = await bootDisk({ name: `grub-fail-${C_TRIES - left}`, disk, script: C_FAILS, timeoutMs: BOOT_TIMEOUT, health: "exempt" });
      console.log(`grub-fail-${C_TRIES - left}: ${timing(r)}`);
      expect(r.exitCode, `console log: ${r.logFile}\n${r.output}`).toBe(0);
      const p = parse(r);
      expect(bootedArg(p.kv.cmdline!, "particle.deploy")).toBe(C);
      expect(p.json.status.status.booted.id).toBe(C);
      expect(r.systemState).toBe("degraded");
      expect(r.failedUnits).toEqual(["particle-health.service"]);
      expect(p.kv.health).toBe("failed");
      expect(p.kv["boot-complete"]).toBe("inactive");
      expect(p.kv["particle-bless"]).toBe("inactive");
      const journal = r.output.split("\n").filter((l) => l.startsWith("HEALTH: ")).join("\n");
      expect(journal).toContain(`check 50-particle-test-fails (/${FAILING_CHECK}) FAILED: exit status 1`);
      expect(journal).toContain(`50-particle-test-fails: ${FAILING_CHECK_SAYS}`);
      // GRUB counted the try before booting C; nothing marked C good.
      expect(Object.fromEntries(espEnv(disk))).toMatchObject({ particle_counted: C, boot_counter: String(left), boot_success: "0" });
    }
    const r = await bootDisk({ name: "grub-6-fallback-a-cut", disk, script: FALLBACK_A_CLEANUP_CUT, until: POWER_CUT, timeoutMs: BOOT_TIMEOUT });
    console.log(`grub-6-fallback-a-cut: ${timing(r)}`);
    expect(r.matched, `no power cut point (console log: ${r.logFile})\n${r.output}`).toBe(true);
    const p = parse(r);
    expect(bootedArg(p.kv.cmdline!, "particle.deploy")).toBe(A);
    // A booted as the fallback: C stays out of tries and unblessed; the menu still lists C first.
    expect(p.json.env).toEqual({ particle_counted: C, boot_counter: "0", boot_success: "0", next_entry: "" });
    expect(p.json.status.status.booted.id).toBe(A);
    // Killed at the fault point (SIGKILL: 128 + 9), with a removed deployment still in tmp/.
    expect(p.kv["cleanup-exit"]).toBe("137");
    expect(Number(p.kv["tmp-at-cut"])).toBeGreaterThan(0);
  }, TEST_TIMEOUT * 2);

  it("after a power cut in the middle of cleanup, GRUB boots A, the store verifies, the next cleanup finishes", async () => {
    const r = await runDisk({ name: "grub-7-after-cleanup-cut", disk, script: AFTER_CLEANUP_CUT, timeoutMs: BOOT_TIMEOUT });
    console.log(`grub-7-after-cleanup-cut: ${timing(r)}`);
    const p = parse(r);
    expect(bootedArg(p.kv.cmdline!, "particle.deploy")).toBe(A);
    // The rollback just before the cut survived it: A is the default (the entry is rewritten on the
    // vfat ESP, where this was once lost; see renameAtomic).
    expect(p.json.status.spec.defaultDeployment).toBe(A);
    expect(p.kv["deployments-whole"]).toBe("yes");
    expect(p.kv["tmp-after"]).toBe("0");
    const left = p.kv.deployments!.trim().split(" ").sort();
    // Booted A and one rollback deployment are kept; the third is gone, with its menu entry.
    expect(left).toHaveLength(2);
    expect(left).toContain(A);
    const after = p.json.after.status;
    expect(after.booted.id).toBe(A);
    expect(after.other).toEqual([]);
    const menu = espMenu(disk);
    expect(menu).toMatch(new RegExp(`^set default=particle-${A}$`, "m"));
    const menuIds = [...menu.matchAll(/--id particle-(\S+) \{/g)].map((m) => m[1]).sort();
    expect(menuIds).toEqual(left);
  }, TEST_TIMEOUT);
});
