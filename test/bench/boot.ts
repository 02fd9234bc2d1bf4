// Section `boot` of `make bench` (issue 3): particle-boot vs an empty compiled Bun program, boot to
// the agent on composefs vs the same tree on plain ext4, and the initramfs size the module adds —
// all measured in the same QEMU run by test/qemu/lib/bench.ts. Each boot takes minutes under TCG.
import type { BenchSection, TargetResult } from "./lib.ts";
import { benchQemu, formatBench } from "../qemu/lib/bench.ts";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const section: BenchSection = {
  name: "boot",
  title: "boot: particle-boot, boot time and initramfs size (QEMU TCG)",
  async run() {
    // One round by default: each is several TCG boots. BENCH_BOOT_ROUNDS=3 for a median.
    const b = await benchQemu({ rounds: Number(process.env.BENCH_BOOT_ROUNDS ?? 1), log: (s) => console.log(s) });
    console.log(formatBench(b));
    const r = (num: number, den: number) => (Number.isFinite(num) && Number.isFinite(den) && den > 0 ? num / den : null);
    const startRatio = r(median(b.particleBootSeconds), median(b.emptyBunSeconds));
    const bootRatio = r(median(b.bootToAgent.composefs), median(b.bootToAgent.plainExt4));
    const added = b.initramfsBytes.added;
    const targets: TargetResult[] = [
      { section: "boot", name: "particle-boot vs empty Bun program", ratioLabel: "particle-boot / empty", ratio: startRatio, target: "≤ 1.3×", pass: startRatio === null ? null : startRatio <= 1.3 },
      { section: "boot", name: "boot to agent: composefs vs plain ext4", ratioLabel: "composefs / ext4", ratio: bootRatio, target: "≤ 1.05×", pass: bootRatio === null ? null : bootRatio <= 1.05 },
      { section: "boot", name: "initramfs size added by the module", ratioLabel: "added / 46 MB", ratio: added / 46e6, target: "≤ 1×", pass: added <= 46e6 },
    ];
    return { name: "boot", targets, failed: false, data: b };
  },
};
export default section;
