// Boot entries and the ESP store on real directories: what stage, rollback and cleanup write, file
// by file. Runs the modules directly (no vfat needed: a mounted ESP is just a directory).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeDeploymentEntry } from "../../runtime/src/bootloader/deploy-entry.ts";
import { promoteDeployment } from "../../runtime/src/bootloader/promote.ts";
import { particleEntries, readEntries } from "../../runtime/src/bootloader/entries.ts";
import { installBootFile, listBootDirs, removeStaleTemps, sha256OfFile } from "../../runtime/src/bootloader/esp.ts";
import { installSystemdBoot } from "../../runtime/src/bootloader/systemd-boot.ts";
import { getKey } from "../../runtime/src/bls/entry.ts";
import { precheckEsp } from "../../runtime/src/deployments/make-bootable.ts";
import type { Manifest } from "../../runtime/src/manifest.ts";

const manifest = (id: string, version = "13"): Manifest => ({
  schema: 1, id, format: "composefs", imageDigest: id.repeat(64).slice(0, 64), source: `dir:/t/${id}`,
  created: "2026-11-25T10:00:00.000Z", version, files: 1, bytes: 1, kernel: "6.12.0-fake",
});

let dir: string;
let esp: string;
const file = (name: string, fill: number, size = 100_000) => {
  const p = join(dir, name);
  writeFileSync(p, Buffer.alloc(size, fill));
  return p;
};
const allFiles = (d: string): string[] => readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(d.length + 1)).sort();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "particle-bls-"));
  esp = join(dir, "esp");
  mkdirSync(esp);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("ESP store", () => {
  it("stores kernels and initramfs images once per content digest", () => {
    const kernel = file("vmlinuz", 1);
    const i1 = file("initrd-1", 2);
    const i2 = file("initrd-2", 3);
    writeDeploymentEntry({ esp, manifest: manifest("1"), rootUuid: "u", kernel, initrd: i1 });
    writeDeploymentEntry({ esp, manifest: manifest("2"), rootUuid: "u", kernel, initrd: i2 });
    const k = sha256OfFile(kernel);
    expect(listBootDirs(esp).sort()).toEqual([k, sha256OfFile(i1), sha256OfFile(i2)].sort());
    expect(allFiles(join(esp, "particle")).filter((f) => f.endsWith("vmlinuz"))).toEqual([`${k}/vmlinuz`]);
    expect(readFileSync(join(esp, "particle", k, "vmlinuz")).equals(readFileSync(kernel))).toBe(true);
  });

  it("an already stored digest is not rewritten", () => {
    const kernel = file("vmlinuz", 1);
    const p = installBootFile(esp, kernel, "vmlinuz");
    writeFileSync(join(esp, p), "marker");
    expect(installBootFile(esp, kernel, "vmlinuz")).toBe(p);
    expect(readFileSync(join(esp, p), "utf8")).toBe("marker");
  });

  it("leaves no temp files, and clears the ones a crash left", () => {
    writeDeploymentEntry({ esp, manifest: manifest("1"), rootUuid: "u", kernel: file("k", 1), initrd: file("i", 2) });
    expect(allFiles(esp).filter((f) => f.split("/").pop()!.startsWith("."))).toEqual([]);
    const d = listBootDirs(esp)[0]!;
    writeFileSync(join(esp, "particle", d, ".123-4.tmp"), "half");
    removeStaleTemps(esp);
    expect(readdirSync(join(esp, "particle", d))).toHaveLength(1);
  });

  it("checks ESP free space before writing anything, with the numbers", () => {
    const big = file("big-initrd", 9, 3_000_000);
    expect(() => writeDeploymentEntry({ esp, manifest: manifest("1"), rootUuid: "u", kernel: file("k", 1), initrd: big, freeBytes: () => 1_000_000 }))
      .toThrow(/ESP .* needs 3\.0 MiB .* but only 1\.0 MiB is free \(3100000 bytes needed, 1000000 free\)/);
    expect(allFiles(esp)).toEqual([]);
  });
});

describe("ESP check before staging on a running system", () => {
  it("estimates from the booted entry's files and fails with the numbers", () => {
    writeDeploymentEntry({ esp, manifest: manifest("1"), rootUuid: "u", kernel: file("k", 1, 300_000), initrd: file("i", 2, 700_000) });
    expect(precheckEsp(esp, "1")).toBeUndefined();
    expect(precheckEsp(esp, "1", 1)).toBeUndefined();
    expect(precheckEsp(esp, undefined, 1e15)?.message).toMatch(/needs 953674316\.4 MiB/);
  });
});

describe("entries", () => {
  const add = (id: string, version = "13") => writeDeploymentEntry({ esp, manifest: manifest(id, version), rootUuid: "u", kernel: file(`k${id}`, 1), initrd: file(`i${id}`, Number(id)) });
  const order = () => particleEntries(readEntries(esp)).map((e) => `${e.name.file}@${e.version}`);

  it("every new entry gets +3 and the next generation, and sorts first", () => {
    add("1");
    add("2", "14");
    expect(order()).toEqual(["particle-14-2+3.conf@2", "particle-13-1+3.conf@1"]);
  });

  it("writing a deployment's entry again replaces it", () => {
    add("1");
    add("1", "13.1");
    expect(order()).toEqual(["particle-13.1-1+3.conf@2"]);
  });

  it("promoting rewrites one entry in place, other entries untouched byte for byte", () => {
    add("1");
    add("2");
    const before = readFileSync(join(esp, "loader/entries/particle-13-2+3.conf"));
    const r = promoteDeployment(esp, "1");
    expect(r).toEqual({ file: "particle-13-1+3.conf", generation: 3 });
    expect(order()).toEqual(["particle-13-1+3.conf@3", "particle-13-2+3.conf@2"]);
    expect(readFileSync(join(esp, "loader/entries/particle-13-2+3.conf")).equals(before)).toBe(true);
  });

  it("promoting an entry whose tries ran out gives it three new tries", () => {
    add("1");
    add("2");
    const dirE = join(esp, "loader/entries");
    const text = readFileSync(join(dirE, "particle-13-1+3.conf"));
    rmSync(join(dirE, "particle-13-1+3.conf"));
    writeFileSync(join(dirE, "particle-13-1+0-3.conf"), text);
    expect(order()).toEqual(["particle-13-2+3.conf@2", "particle-13-1+0-3.conf@1"]);
    promoteDeployment(esp, "1");
    expect(readdirSync(dirE).sort()).toEqual(["particle-13-1+3.conf", "particle-13-2+3.conf"]);
    expect(order()[0]).toBe("particle-13-1+3.conf@3");
  });

  it("refuses to promote a deployment without an entry", () => {
    expect(() => promoteDeployment(esp, "7")).toThrow(/deployment 7 has no boot entry/);
  });

  it("installing systemd-boot writes both loader paths, loader.conf and the entries dir", () => {
    const efi = file("fake.efi", 0x4d, 5000);
    installSystemdBoot(esp, efi, { timeout: 0 });
    expect(allFiles(esp)).toEqual(["EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi", "loader/entries.srel", "loader/loader.conf"]);
    expect(readFileSync(join(esp, "loader/loader.conf"), "utf8")).toMatch(/^default particle-\*$/m);
    expect(existsSync(join(esp, "loader/entries"))).toBe(true);
    add("1");
    expect(getKey(particleEntries(readEntries(esp))[0]!.entry, "sort-key")).toBe("particle");
  });
});
