import { describe, expect, it } from "vitest";
import { storedBound } from "../../runtime/src/tree/scan.ts";
import { SPARSE_MIN_SIZE } from "../../runtime/src/erofs/data.ts";

describe("the bytes a scan says a full erofs image stores", () => {
  it("counts a large file's holes as nothing", () => {
    // 5 GiB apparent, 8 KiB allocated: the image keeps the rest as null chunks.
    expect(storedBound(5 * 1024 ** 3, 16)).toBe(8192);
  });

  it("counts a small file whole, holes or not: the image does not look for them", () => {
    expect(storedBound(SPARSE_MIN_SIZE - 1, 0)).toBe(SPARSE_MIN_SIZE - 1);
    expect(storedBound(3000, 8)).toBe(3000);
  });

  it("never counts more than the file's size (the allocation rounds up to blocks)", () => {
    expect(storedBound(SPARSE_MIN_SIZE + 1, (SPARSE_MIN_SIZE + 4096) / 512)).toBe(SPARSE_MIN_SIZE + 1);
  });
});
