// The QEMU tier: two files at a time, each guest with one vCPU (lib/qemu.ts QEMU_SMP), so the two
// host cores each run one guest. Measured against one file at a time with two vCPUs: see the
// README's "Test time".
import { basename } from "node:path";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Longest first (single-file seconds in CI: cycle ~1,020, layering and sealed estimated 800-900 and 700-800, grub ~530, bookworm ~520, boot ~285, plain ~125 with its install in the guest), so the two workers end at about the same time. */
const ORDER = ["cycle", "layering", "sealed", "registry", "grub", "bookworm", "powercut", "boot", "plain"];
const rank = (s: TestSpecification) => {
  const i = ORDER.indexOf(basename(s.moduleId).replace(/\.test\.ts$/, ""));
  return i < 0 ? ORDER.length : i;
};

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => rank(a) - rank(b) || a.moduleId.localeCompare(b.moduleId));
  }
}

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 1_800_000,
    globalSetup: ["test/qemu/global-setup.ts"],
    fileParallelism: true,
    maxWorkers: Number(process.env.PARTICLE_QEMU_JOBS || 2),
    sequence: { sequencer: LongestFirst },
  },
});
