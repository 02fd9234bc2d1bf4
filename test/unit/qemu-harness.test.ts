import { describe, expect, it } from "vitest";
import { bootHealth, emulationCrash, unhealthy } from "../qemu/lib/qemu.ts";

describe("the QEMU harness's emulation-crash check", () => {
  it("retries an oops in early init, before the initramfs runs", () => {
    expect(emulationCrash("[ 6.09] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[ 6.09] Kernel panic - not syncing: Fatal exception in interrupt\n")).toBe(true);
  });

  it("leaves intended failures alone: a panic without an oops, or anything after /init", () => {
    expect(emulationCrash("[ 12.4] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n")).toBe(false);
    expect(emulationCrash("[ 3.1] Run /init as init process\n[ 63.5] Kernel panic - not syncing: Attempted to kill init!\n")).toBe(false);
    expect(emulationCrash("[ 3.1] Run /init as init process\n[ 40.0] BUG: unable to handle page fault\n")).toBe(false);
    expect(emulationCrash("a clean boot\n")).toBe(false);
  });
});

describe("the QEMU harness's boot health verdict", () => {
  const report = (state: string, failed: string) => `@@PARTICLE-AGENT-READY 41.2@@\n@@PARTICLE-AGENT-SYSTEM ${state}@@\n@@PARTICLE-AGENT-FAILED ${failed}@@\n@@| KV:x:y\n`;
  const verdict = (text: string) => ({ ...bootHealth(text), readyUptime: /READY/.test(text) ? 41.2 : null, logFile: "/logs/x.log" });

  it("reads the state and the failed units", () => {
    expect(bootHealth(report("degraded", "particle-bless.service particle-health.service "))).toEqual({ systemState: "degraded", failedUnits: ["particle-bless.service", "particle-health.service"] });
    expect(bootHealth(report("running", ""))).toEqual({ systemState: "running", failedUnits: [] });
    expect(bootHealth("no agent here")).toEqual({ systemState: null, failedUnits: [] });
  });

  it("a running system with no failed unit is healthy", () => {
    expect(unhealthy(verdict(report("running", "")), "b")).toBeUndefined();
  });

  it("names the state and every failed unit otherwise", () => {
    const why = unhealthy(verdict(report("degraded", "particle-bless.service ")), "boot-1");
    expect(why).toMatch(/^boot-1: .*"degraded".*particle-bless\.service.*\/logs\/x\.log/);
    // The agent's wait ran out: still a failure, even with no failed unit (yet).
    expect(unhealthy(verdict(report("starting", "")), "b")).toMatch(/"starting", failed units: none/);
    // The agent started but never said how the boot went.
    expect(unhealthy(verdict("@@PARTICLE-AGENT-READY 3.0@@\n"), "b")).toMatch(/no report/);
  });

  it("leaves a boot that never reached the agent to its test", () => {
    expect(unhealthy(verdict("[ 63.5] Kernel panic - not syncing\n"), "b")).toBeUndefined();
  });
});
