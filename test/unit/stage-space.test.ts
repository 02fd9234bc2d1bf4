import { describe, expect, it } from "vitest";
import { IMAGE_BYTES_PER_FILE, precheckStageSpace, stageSpaceNeed } from "../../runtime/src/store/space.ts";
import { SPACE_MARGIN } from "../../runtime/src/deployments/space.ts";

describe("the sysroot space check before staging", () => {
  it("needs only the metadata image for composefs, whatever the tree's bytes", () => {
    expect(stageSpaceNeed("composefs", 1000, 5e9, "/s", 0).needed).toBe(1000 * IMAGE_BYTES_PER_FILE);
    expect(precheckStageSpace("composefs", 1000, 5e9, "/s", 1000 * IMAGE_BYTES_PER_FILE + SPACE_MARGIN)).toBeUndefined();
  });

  it("needs the whole tree for a full erofs image", () => {
    expect(stageSpaceNeed("erofs", 10, 1e6, "/s", 0).needed).toBe(10 * IMAGE_BYTES_PER_FILE + 1e6);
  });

  it("refuses with the numbers and the sysroot's name", () => {
    const e = precheckStageSpace("erofs", 10, 64 << 20, "/mnt/root", 40 << 20);
    expect(e?.message).toMatch(/^not enough free space, nothing was written/);
    expect(e?.message).toMatch(/sysroot \/mnt\/root \(the erofs image of 10 files\): needs 64\.0 MiB/);
    expect(e?.message).toMatch(/only 40\.0 MiB is free/);
  });
});
