import { describe, expect, it } from "vitest";
import { formatTiming } from "../../boot/src/timing.ts";
import { bootSteps } from "../qemu/lib/bench.ts";

// A /proc/<pid>/stat line whose command name holds a space and a parenthesis; starttime 2345 ticks.
const STAT = "412 (particle boot)) S 1 412 412 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0 2345 1000 10 18446744073709551615";

describe("particle-boot step timing", () => {
  it("formats the marks and the fork time from /proc/self/stat", () => {
    const line = formatTiming([["js", 3.14], ["modules", 40], ["end", 812.25]], STAT);
    expect(line).toBe("timing (ms): js 3.1, modules 40.0, end 812.3; forked at 23.45 s");
  });

  it("leaves the fork time out without /proc", () => {
    expect(formatTiming([["js", 1]], null)).toBe("timing (ms): js 1.0");
  });

  it("is read back by the bench from dmesg output", () => {
    const dmesg = `[   23.9] particle-boot: ${formatTiming([["js", 3], ["ro-root", 500.5], ["end", 900]], STAT)}\nother`;
    expect(bootSteps(dmesg)).toEqual({ js: 3, "ro-root": 500.5, end: 900 });
    expect(bootSteps("no such line")).toBeNull();
  });
});
