import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VerityHasher, verityDigest } from "../../runtime/src/verity/digest.ts";
import { sha256, sha256Into } from "../../runtime/src/verity/sha256.ts";
import { deterministicBytes } from "../host/lib/fixture.ts";

const bytes = (n: number, seed = 1) => deterministicBytes(n, seed);

const B = 4096;
const HASHES_PER_BLOCK = 128;
const SIZES = [0, 1, 4095, 4096, 4097, 8192, 1024 * 1024 + 1, HASHES_PER_BLOCK * B, HASHES_PER_BLOCK * B + 1,
  (HASHES_PER_BLOCK + 1) * B, HASHES_PER_BLOCK * HASHES_PER_BLOCK * B, HASHES_PER_BLOCK * HASHES_PER_BLOCK * B + 4097];

describe("fs-verity digest", () => {
  const dir = mkdtempSync(join(tmpdir(), "verity-"));
  it.each(SIZES)("matches `fsverity digest` for %i bytes", (size) => {
    const data = bytes(size, size + 7);
    const f = join(dir, `f${size}`);
    writeFileSync(f, data);
    const out = execFileSync("fsverity", ["digest", "--compact", "--hash-alg=sha256", "--block-size=4096", f]).toString().trim();
    expect(verityDigest(data)).toBe(out);
    rmSync(f);
  });

  it("matches `fsverity digest` for mostly-zero (sparse) content", () => {
    const data = Buffer.alloc(300 * B + 17);
    data[5 * B + 3] = 1;
    data[data.length - 1] = 9;
    const f = join(dir, "sparse");
    writeFileSync(f, data);
    const out = execFileSync("fsverity", ["digest", "--compact", f]).toString().trim();
    expect(verityDigest(data)).toBe(out);
  });

  it("hashes into the caller's buffer what sha256 returns", () => {
    const out = new Uint8Array(32);
    for (const data of [bytes(0), bytes(4096, 3), bytes(100_000, 4)]) {
      expect(sha256Into(data, out)).toBe(out);
      expect(Buffer.from(out)).toEqual(Buffer.from(sha256(data)));
    }
  });

  it("does not depend on how the input is chunked", () => {
    const data = bytes(3 * B * HASHES_PER_BLOCK + 123, 99);
    const whole = verityDigest(data);
    for (const chunk of [1, 7, 4095, 4096, 4097, 65536, 1 << 20]) {
      const h = new VerityHasher();
      for (let off = 0; off < data.length; off += chunk) h.update(data.subarray(off, off + chunk));
      expect(h.digest(), `chunk ${chunk}`).toBe(whole);
    }
  });

  it.each([
    [0, 10, 0], [0, 4096, 0], [5, 4091, 7], [100, 3 * 4096 + 5, 4096], [4096, 200 * 4096, 1], [1, 129 * 4096 * 2, 4095],
  ])("hashes holes fed by updateZeros like real zeros (%i data, %i zeros, %i data)", (a, zeros, b) => {
    const head = bytes(a, 5);
    const tail = bytes(b, 6);
    const h = new VerityHasher();
    h.update(head);
    h.updateZeros(zeros);
    h.update(tail);
    expect(h.digest()).toBe(verityDigest(Buffer.concat([head, Buffer.alloc(zeros), tail])));
  });

  it("gives the all-zero root for an empty file (known digest)", () => {
    expect(verityDigest(Buffer.alloc(0))).toBe("3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95");
  });
});
