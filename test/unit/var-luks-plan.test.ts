import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { planVarLuks, VAR_HEAD_BYTES } from "../../boot/src/var-luks-plan.ts";

const DEV = "/dev/disk/by-partlabel/particle-var";
const head = (fill: (b: Buffer) => void) => {
  const b = Buffer.alloc(VAR_HEAD_BYTES);
  fill(b);
  return b;
};
const luks = (version: number) => head((b) => {
  Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]).copy(b);
  b.writeUInt16BE(version, 6);
});

describe("particle.var=luks: what the partition's head says", () => {
  it("LUKS2: unlock; blank: provision", () => {
    expect(planVarLuks(luks(2), DEV)).toEqual({ kind: "unlock" });
    expect(planVarLuks(Buffer.alloc(VAR_HEAD_BYTES), DEV)).toEqual({ kind: "provision" });
  });
  it("LUKS1 is refused: it holds no token", () => {
    expect(planVarLuks(luks(1), DEV)).toMatchObject({ kind: "refuse", why: expect.stringMatching(/LUKS1 volume; only LUKS2/) });
  });
  it("one stray byte is not blank: refused, never formatted over", () => {
    const r = planVarLuks(head((b) => { b[40000] = 1; }), DEV);
    expect(r).toMatchObject({ kind: "refuse", why: expect.stringMatching(/^particle\.var=luks: \/dev\/disk\/by-partlabel\/particle-var holds unrecognised data, not a LUKS2 volume/) });
  });
  it("an empty device is refused", () => {
    expect(planVarLuks(Buffer.alloc(0), DEV).kind).toBe("refuse");
  });
  // Real mkfs output, not our idea of its magic numbers.
  it.each([
    ["mkfs.ext4", ["-q", "-F"], "an ext2/3/4 filesystem"],
    ["mkfs.vfat", [], "a FAT filesystem"],
  ])("a plaintext filesystem made by %s is refused and named", (mkfs, args, what) => {
    const dir = mkdtempSync(join(tmpdir(), "var-luks-"));
    try {
      const img = join(dir, "var.img");
      writeFileSync(img, Buffer.alloc(0));
      spawnSync("truncate", ["-s", "64M", img]);
      const r = spawnSync(mkfs, [...args, img], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      const p = planVarLuks(readFileSync(img).subarray(0, VAR_HEAD_BYTES), DEV);
      expect(p).toMatchObject({ kind: "refuse", why: expect.stringContaining(`holds ${what}, not a LUKS2 volume; a plaintext /var is refused`) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("a LUKS2 header made by cryptsetup is unlocked", () => {
    const dir = mkdtempSync(join(tmpdir(), "var-luks-"));
    try {
      const img = join(dir, "var.img");
      spawnSync("truncate", ["-s", "32M", img]);
      const r = spawnSync("cryptsetup", ["luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", "-", img], { input: "k", encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      expect(planVarLuks(readFileSync(img).subarray(0, VAR_HEAD_BYTES), DEV)).toEqual({ kind: "unlock" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
