import { describe, expect, it } from "vitest";
import { parseManifest } from "../../runtime/src/manifest.ts";

// manifest.ts is zod/mini (particle-boot's start-up); its errors must still read like classic zod's.
describe("manifest errors", () => {
  it("carry zod's English messages, not mini's bare 'Invalid input'", () => {
    const bad = { schema: 2, id: "1", format: "zz", imageDigest: "a".repeat(64), source: "x", created: "n", files: -1, bytes: 2 };
    let msg = "";
    try {
      parseManifest(JSON.stringify(bad), "d.json");
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain("Invalid input: expected 1");
    expect(msg).toContain('Invalid option: expected one of "composefs"|"erofs"|"squashfs"');
    expect(msg).toContain("Too small: expected number to be >=0");
    expect(msg).not.toMatch(/Invalid input\n/);
  });
});
