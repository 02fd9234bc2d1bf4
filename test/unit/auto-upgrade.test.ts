import { describe, expect, it } from "vitest";
import { parseUpgradeConf } from "../../runtime/src/auto/config.ts";
import { autoSteps } from "../../runtime/src/auto/steps.ts";
import { parseLastCheck } from "../../runtime/src/auto/last-check.ts";
import { buildStatus } from "../../runtime/src/deployments/status.ts";
import { renderStatus } from "../../runtime/src/deployments/render-status.ts";

describe("upgrade.conf", () => {
  it("defaults to stage when the file says nothing", () => {
    expect(parseUpgradeConf("", "u.conf")).toEqual({ policy: "stage" });
    expect(parseUpgradeConf("# only comments\n; and these\n[Upgrade]\n", "u.conf")).toEqual({ policy: "stage" });
  });
  it("reads each policy", () => {
    for (const p of ["check", "stage", "reboot"]) expect(parseUpgradeConf(`[Upgrade]\nPolicy = ${p}\n`, "u.conf").policy).toBe(p);
  });
  it("names the file and line of what it refuses", () => {
    expect(() => parseUpgradeConf("[Upgrade]\nPolicy=apply\n", "/etc/particle/upgrade.conf")).toThrow(/upgrade\.conf: Policy="apply" is not one of check, stage, reboot/);
    expect(() => parseUpgradeConf("[Upgrade]\nPolcy=stage\n", "u.conf")).toThrow(/u\.conf:2: unknown key Polcy=/);
    expect(() => parseUpgradeConf("Policy=stage\n", "u.conf")).toThrow(/u\.conf:1: Policy= is outside the \[Upgrade\] section/);
    expect(() => parseUpgradeConf("[Daemon]\n", "u.conf")).toThrow(/u\.conf:1: unknown section \[Daemon\]/);
    expect(() => parseUpgradeConf("[Upgrade]\nreboot\n", "u.conf")).toThrow(/u\.conf:2: expected Key=Value/);
  });
});

describe("what the timer does", () => {
  it("check never stages; stage never reboots; reboot only after staging in this run", () => {
    expect(autoSteps("check", false)).toEqual({ stage: false, reboot: false });
    expect(autoSteps("stage", true)).toEqual({ stage: true, reboot: false });
    expect(autoSteps("reboot", true)).toEqual({ stage: true, reboot: true });
    // Staged earlier and fell back by boot counting: rebooting again would loop.
    expect(autoSteps("reboot", false)).toEqual({ stage: true, reboot: false });
  });
});

describe("the last-check record", () => {
  const rec = { at: "2026-12-01T03:00:00.000Z", reference: "docker://r/os:stable", result: "staged", digest: "sha256:" + "a".repeat(64), stagedId: "7", error: null, policy: "stage" };
  it("round-trips and is refused by name when damaged", () => {
    expect(parseLastCheck(JSON.stringify(rec), "x.json")).toEqual(rec);
    expect(() => parseLastCheck("{", "/s/particle/upgrade-check.json")).toThrow(/upgrade-check\.json: not valid JSON/);
    expect(() => parseLastCheck(JSON.stringify({ ...rec, result: "maybe" }), "r.json")).toThrow(/r\.json: not an upgrade-check record/);
  });
  it("is shown by status, and 'never' without one", () => {
    const base = { manifests: [], entries: [], etc: new Map() };
    expect(renderStatus(buildStatus(base))).toContain("Last update check: never");
    const h = buildStatus({ ...base, upgradeCheck: parseLastCheck(JSON.stringify(rec), "x") });
    expect(h.status.upgradeCheck).toEqual(rec);
    expect(renderStatus(h)).toContain(`Last update check: 2026-12-01T03:00:00.000Z (timer, policy stage): staged docker://r/os:stable sha256:${"a".repeat(64)} as deployment 7`);
    const failed = buildStatus({ ...base, upgradeCheck: { ...rec, result: "failed", error: "registry 127.0.0.1:5000 unreachable", policy: null } });
    expect(renderStatus(failed)).toContain("Last update check: 2026-12-01T03:00:00.000Z: failed: registry 127.0.0.1:5000 unreachable");
  });
});
