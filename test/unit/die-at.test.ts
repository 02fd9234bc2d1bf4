// The fault-injection switch of the crash campaign: dies at the named pass of a checkpoint only,
// traces every pass, and does nothing when neither variable is set.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";

async function load(env: Record<string, string | undefined>) {
  vi.resetModules();
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  const kill = vi.spyOn(process, "kill").mockImplementation(() => true);
  const mod = await import("../../runtime/src/system/die-at.ts");
  return { checkpoint: mod.checkpoint, kill };
}

afterEach(() => {
  delete process.env.PARTICLE_DIE_AT;
  delete process.env.PARTICLE_DIE_TRACE;
  vi.restoreAllMocks();
});

describe("checkpoint", () => {
  it("kills itself at the n-th pass of the named step, not at other steps or passes", async () => {
    const { checkpoint, kill } = await load({ PARTICLE_DIE_AT: "entry:written#2", PARTICLE_DIE_TRACE: undefined });
    checkpoint("entry:written");
    checkpoint("atomic:renamed");
    expect(kill).not.toHaveBeenCalled();
    checkpoint("entry:written");
    expect(kill).toHaveBeenCalledWith(process.pid, "SIGKILL");
    checkpoint("entry:written");
    expect(kill).toHaveBeenCalledTimes(1);
  });

  it("without #n dies at the first pass", async () => {
    const { checkpoint, kill } = await load({ PARTICLE_DIE_AT: "stage:data-synced", PARTICLE_DIE_TRACE: undefined });
    checkpoint("stage:data-synced");
    expect(kill).toHaveBeenCalledTimes(1);
  });

  it("traces every pass with its number", async () => {
    const trace = join(mkdtempSync(join(tmpdir(), "die-at-")), "trace");
    const { checkpoint, kill } = await load({ PARTICLE_DIE_AT: undefined, PARTICLE_DIE_TRACE: trace });
    checkpoint("a");
    checkpoint("b");
    checkpoint("a");
    expect(readFileSync(trace, "utf8")).toBe("a#1\nb#1\na#2\n");
    expect(kill).not.toHaveBeenCalled();
  });

  it("does nothing when neither variable is set", async () => {
    const { checkpoint, kill } = await load({ PARTICLE_DIE_AT: undefined, PARTICLE_DIE_TRACE: undefined });
    for (let i = 0; i < 3; i++) checkpoint("entry:written");
    expect(kill).not.toHaveBeenCalled();
  });
});
