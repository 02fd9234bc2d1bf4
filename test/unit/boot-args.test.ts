import { describe, expect, it } from "vitest";
import { parseOptions } from "../../boot/src/args.ts";

describe("particle-boot options", () => {
  it("defaults to the initramfs paths", () => {
    expect(parseOptions([])).toEqual({ sysroot: "/sysroot", cmdline: undefined, target: "/sysroot", runDir: "/run", kmsg: true, help: false });
  });
  it("target follows --sysroot unless given", () => {
    expect(parseOptions(["--sysroot", "/s"]).target).toBe("/s");
    expect(parseOptions(["--sysroot", "/s", "--target", "/t"]).target).toBe("/t");
  });
  it("takes every override", () => {
    expect(parseOptions(["--sysroot=/s", "--cmdline", "a b", "--target=/t", "--run-dir", "/r", "--no-kmsg"])).toEqual({
      sysroot: "/s", cmdline: "a b", target: "/t", runDir: "/r", kmsg: false, help: false,
    });
  });
  it.each([
    [["--bogus"], /bogus/],
    [["positional"], /positional/],
    [["--sysroot", "rel"], /--sysroot rel: must be an absolute path/],
    [["--target", "t"], /--target t/],
    [["--run-dir", "r"], /--run-dir r/],
    [["--sysroot"], /sysroot/],
  ])("refuses %j", (argv, msg) => expect(() => parseOptions(argv)).toThrow(msg));
});
