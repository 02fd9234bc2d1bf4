import { describe, expect, it } from "vitest";
import type { DoctorFacts } from "../../runtime/src/doctor/facts.ts";
import { diagnose, STORE_LOW_BYTES } from "../../runtime/src/doctor/plan.ts";
import { renderDoctor } from "../../runtime/src/doctor/render.ts";
import { DoctorReport } from "../../runtime/src/doctor/schema.ts";
import { parseKernelConfig } from "../../runtime/src/kernel/config.ts";
import { parseLastCheck } from "../../runtime/src/auto/last-check.ts";

const GIB = 1024 ** 3;
const TRIXIE = parseKernelConfig("CONFIG_BLK_DEV_LOOP=m\nCONFIG_OVERLAY_FS=m\nCONFIG_SQUASHFS=m\nCONFIG_SQUASHFS_ZSTD=y\nCONFIG_EROFS_FS=m\nCONFIG_EROFS_FS_BACKED_BY_FILE=y\nCONFIG_FS_VERITY=y\n");

/** A healthy machine: booted 1, staged and finalized 2, both with blessed entries. */
function healthy(): DoctorFacts {
  return {
    kernel: { release: "6.12.48+deb13-amd64", config: TRIXIE, modules: null },
    storeFsVerity: { support: "yes", why: "images/x.erofs is sealed" },
    store: { path: "/sysroot/particle", freeBytes: 20 * GIB, totalBytes: 40 * GIB },
    esp: { path: "/efi", freeBytes: 400 << 20, totalBytes: 512 << 20 },
    espLargestBootPair: 80 << 20,
    deployments: [
      { id: "1", format: "composefs", created: "2026-12-01T10:00:00Z" },
      { id: "2", format: "composefs", created: "2026-12-01T11:00:00Z", carryOver: { from: "1", phase: "finalize" } },
    ],
    entries: [{ file: "particle-13-2.conf", deployId: "2" }, { file: "particle-13-1.conf", deployId: "1" }],
    bootedId: "1",
    defaultId: "2",
    verify: { imagesChecked: 2, imagesSkipped: 0, objectsChecked: 100, problems: [] },
    upgradeCheck: { at: "2026-12-01T09:00:00Z", reference: "docker://example/os:stable", result: "current", digest: null, stagedId: null, error: null, policy: "check" },
  };
}
const finding = (facts: DoctorFacts, check: string) => diagnose(facts).findings.filter((f) => f.check === check);
const severities = (facts: DoctorFacts) => diagnose(facts).findings.map((f) => `${f.check}:${f.severity}`);

describe("particle doctor's findings", () => {
  it("a healthy machine: every check ok, nothing to do", () => {
    const r = diagnose(healthy());
    expect(r.findings.every((f) => f.severity === "ok" && f.action === null)).toBe(true);
    expect(severities(healthy())).toEqual([
      "kernel-formats:ok", "store-fs-verity:ok", "store-space:ok", "esp-space:ok", "entries:ok", "quick-verify:ok", "boot-counting:ok", "finalize:ok", "upgrade-check:ok",
    ]);
    expect(DoctorReport.parse(JSON.parse(JSON.stringify(r)))).toEqual(r);
  });

  it("an older kernel: which formats boot and why the others do not", () => {
    const facts = { ...healthy(), kernel: { release: "6.1.0-28-amd64", config: { ...TRIXIE, CONFIG_EROFS_FS_BACKED_BY_FILE: "n" }, modules: null } };
    const [k] = finding(facts, "kernel-formats");
    expect(k).toMatchObject({ severity: "info" });
    expect(k!.message).toMatch(/^kernel 6\.1\.0-28-amd64 can boot erofs, squashfs; not composefs \(.*kernel 6\.1 < 6\.5/);
    expect(diagnose(facts).kernel.formats.map((v) => v.boots)).toEqual([false, true, true]);
  });

  it("a kernel that boots nothing is an error", () => {
    const facts = { ...healthy(), kernel: { release: "6.1.0", config: { CONFIG_OVERLAY_FS: "m" }, modules: null } };
    expect(finding(facts, "kernel-formats")[0]).toMatchObject({ severity: "error", action: expect.stringMatching(/CONFIG_EROFS_FS/) });
  });

  it("no fs-verity on the store's filesystem", () => {
    const facts = { ...healthy(), storeFsVerity: { support: "no" as const, why: "tmpfs" } };
    expect(finding(facts, "store-fs-verity")[0]).toMatchObject({ severity: "warning", action: expect.stringMatching(/tune2fs -O verity/) });
  });

  it("little space on the store and the ESP", () => {
    const facts = { ...healthy(), store: { path: "/s", freeBytes: STORE_LOW_BYTES - 1, totalBytes: 100 * GIB }, esp: { path: "/efi", freeBytes: 10 << 20, totalBytes: 512 << 20 } };
    expect(finding(facts, "store-space")[0]).toMatchObject({ severity: "warning", action: expect.stringMatching(/particle cleanup/) });
    expect(finding(facts, "esp-space")[0]).toMatchObject({ severity: "warning", message: expect.stringMatching(/10\.0 MiB free, less than the largest kernel and initramfs on it \(80\.0 MiB\)/) });
  });

  it("no store at all, no ESP", () => {
    const facts = { ...healthy(), store: { path: "/x/particle", freeBytes: null, totalBytes: null }, esp: { path: null, freeBytes: null, totalBytes: null } };
    expect(finding(facts, "store-space")[0]).toMatchObject({ severity: "error", message: "no store at /x/particle (the sysroot holds no particle/)" });
    expect(finding(facts, "esp-space")[0]).toMatchObject({ severity: "info" });
  });

  it("an entry whose deployment is gone, a deployment no entry boots", () => {
    const facts = healthy();
    facts.entries.push({ file: "particle-13-7+2-1.conf", deployId: "7" });
    facts.deployments.push({ id: "3", format: "erofs", created: "2026-12-01T08:00:00Z" });
    expect(finding(facts, "entry-without-deployment")).toEqual([expect.objectContaining({ severity: "error", message: expect.stringMatching(/particle-13-7\+2-1\.conf boots deployment 7, which is not in the store/), action: expect.stringMatching(/loader\/entries\/particle-13-7\+2-1\.conf/) })]);
    expect(finding(facts, "deployment-without-entry")).toEqual([expect.objectContaining({ severity: "info", message: expect.stringMatching(/^deployment 3 has no boot entry/) })]);
    expect(finding(facts, "entries")).toEqual([]);
  });

  it("the base of a layered deployment needs no entry; a booted deployment without one is a warning", () => {
    const facts = healthy();
    facts.deployments.push({ id: "4", format: "composefs", created: "2026-12-01T12:00:00Z", baseId: "3" }, { id: "3", format: "composefs", created: "2026-12-01T12:00:00Z" });
    facts.entries.push({ file: "particle-13-4.conf", deployId: "4" });
    expect(finding(facts, "deployment-without-entry")).toEqual([]);
    facts.entries = facts.entries.filter((e) => e.deployId !== "1");
    expect(finding(facts, "deployment-without-entry")).toEqual([expect.objectContaining({ severity: "warning", message: expect.stringMatching(/deployment 1 \(booted\)/) })]);
  });

  it("quick verify problems are errors, each with what to do", () => {
    const facts = { ...healthy(), verify: { imagesChecked: 1, imagesSkipped: 0, objectsChecked: 3, problems: [{ what: "deployment 2", problem: "image missing: /s/particle/images/x.erofs" }] } };
    expect(finding(facts, "quick-verify")).toEqual([expect.objectContaining({ severity: "error", message: "deployment 2: image missing: /s/particle/images/x.erofs", action: expect.stringMatching(/particle verify/) })]);
    const skipped = { ...healthy(), verify: { imagesChecked: 0, imagesSkipped: 2, objectsChecked: 0, problems: [] } };
    expect(finding(skipped, "quick-verify")[0]).toMatchObject({ severity: "ok", message: expect.stringMatching(/2 large unsealed images not re-read/) });
  });

  it("boot counting: an entry out of tries, a booted entry not blessed yet", () => {
    const facts = healthy();
    facts.entries = [{ file: "particle-13-2+0-3.conf", deployId: "2", triesLeft: 0, triesDone: 3 }, { file: "particle-13-1+2-1.conf", deployId: "1", triesLeft: 2, triesDone: 1 }];
    const f = finding(facts, "boot-counting");
    expect(f).toHaveLength(2);
    expect(f[0]).toMatchObject({ severity: "warning", message: expect.stringMatching(/particle-13-2\+0-3\.conf \(deployment 2\) ran out of tries: it failed to boot 3 times/) });
    expect(f[1]).toMatchObject({ severity: "info", message: expect.stringMatching(/still counting tries \(2 left\)/), action: expect.stringMatching(/systemd-bless-boot/) });
  });

  it("a staged update not finalized yet; a rollback target is not an update", () => {
    const facts = healthy();
    facts.deployments[1]!.carryOver = { from: "1", phase: "stage" };
    expect(finding(facts, "finalize")[0]).toMatchObject({ severity: "info", message: expect.stringMatching(/deployment 2 is staged; its \/etc is finalized at shutdown/), action: expect.stringMatching(/particle finalize/) });
    const rollback = { ...facts, bootedId: "2", defaultId: "1" };
    expect(finding(rollback, "finalize")[0]).toMatchObject({ severity: "ok" });
  });

  it("the last upgrade check: never, failed, available, staged, unreadable", () => {
    expect(finding({ ...healthy(), upgradeCheck: null }, "upgrade-check")[0]).toMatchObject({ severity: "info", message: "last upgrade check: never" });
    expect(diagnose({ ...healthy(), upgradeCheck: null }).upgradeCheck).toBeNull();
    const failed = parseLastCheck(JSON.stringify({ at: "t", reference: "docker://r", result: "failed", digest: null, stagedId: null, error: "timeout", policy: "check" }), "x");
    expect(finding({ ...healthy(), upgradeCheck: failed }, "upgrade-check")[0]).toMatchObject({ severity: "warning", message: expect.stringMatching(/failed: timeout/) });
    expect(finding({ ...healthy(), upgradeCheck: { ...failed, result: "available", error: null } }, "upgrade-check")[0]).toMatchObject({ severity: "info", action: "`particle upgrade` stages it" });
    expect(finding({ ...healthy(), upgradeCheck: { ...failed, result: "staged", error: null, stagedId: "3" } }, "upgrade-check")[0]).toMatchObject({ severity: "ok", message: expect.stringMatching(/staged docker:\/\/r as deployment 3/) });
    expect(finding({ ...healthy(), upgradeCheck: { unreadable: "bad json" } }, "upgrade-check")[0]).toMatchObject({ severity: "warning" });
  });

  it("renders for people: the kernel first, then each finding with what to do", () => {
    const facts = { ...healthy(), upgradeCheck: null };
    const text = renderDoctor(diagnose(facts));
    expect(text).toMatch(/^kernel 6\.12\.48\+deb13-amd64\n {2}EROFS +yes +CONFIG_EROFS_FS=m\n/);
    expect(text).toMatch(/^last upgrade check: never$/m);
    expect(text).toMatch(/^\[info\] upgrade-check: last upgrade check: never\n {7}what to do: `particle upgrade --check`/m);
  });
});
