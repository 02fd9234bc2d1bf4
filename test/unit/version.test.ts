import { describe, expect, it } from "vitest";
import { buildInfo, renderVersion } from "../../runtime/src/build-info.ts";

describe("particle --version", () => {
  it("names the version, commit, build time, formats and bootloaders", () => {
    const text = renderVersion({ version: "1.2.3", commit: "0123456789ab", buildTime: "2026-12-01T00:00:00Z", formats: ["composefs", "erofs"], bootloaders: ["systemd-boot", "grub"] });
    expect(text.split("\n")).toEqual([
      "particle 1.2.3", "commit: 0123456789ab", "built: 2026-12-01T00:00:00Z",
      "formats: composefs, erofs (auto picks per kernel)", "bootloaders: systemd-boot, grub", "",
    ]);
  });

  it("run from source (no bun --define), commit and time are unknown; the formats are the manifest's", () => {
    expect(buildInfo()).toMatchObject({ commit: "unknown", buildTime: "unknown", formats: ["composefs", "erofs", "squashfs"] });
  });
});
