import { describe, expect, it } from "vitest";
import { emulationCrash } from "../qemu/lib/qemu.ts";

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
