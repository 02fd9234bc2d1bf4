import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { buildStatus } from "../../runtime/src/deployments/status.ts";
import { planCleanup, keptDeployments } from "../../runtime/src/deployments/cleanup.ts";
import { checkSpace, SPACE_MARGIN } from "../../runtime/src/deployments/space.ts";
import { planConflicts, walkUpper, kindOf } from "../../runtime/src/deployments/etc-carry.ts";
import { objectFromRedirect } from "../../runtime/src/deployments/refs.ts";
import { sortEntries } from "../../runtime/src/bls/order.ts";
import { loadEntry, type LoadedEntry } from "../../runtime/src/bootloader/entries.ts";
import type { Manifest } from "../../runtime/src/manifest.ts";

const dig = (c: string) => c.repeat(64);
const manifest = (id: string): Manifest => ({
  schema: 1, id, format: "composefs", imageDigest: dig(id), source: `dir:/t/${id}`, created: `2026-11-2${id}T10:00:00.000Z`, files: 10, bytes: 1000,
});
// Deployment 4's kernel is shared with the others (dig("b")); each initramfs is its own.
const entry = (file: string, id: string, gen: number): LoadedEntry =>
  loadEntry(file, `title t\nversion ${gen}\nsort-key particle\nlinux /particle/${dig("b")}/vmlinuz\ninitrd /particle/${dig(id)}/initrd.img\noptions root=UUID=u rw particle.deploy=${id} particle.image=${dig(id)}\n`)!;

describe("cleanup choice", () => {
  // 4 deployments: 1 old, 2 rollback, 3 booted, 4 staged, 5 without an entry.
  const entries = sortEntries([entry("particle-13-1.conf", "1", 1), entry("particle-13-2.conf", "2", 2), entry("particle-13-3.conf", "3", 3), entry("particle-13-4+3.conf", "4", 4), entry("particle-13-9.conf", "9", 0)]);
  const ms = ["1", "2", "3", "4", "5"].map((i) => manifest(i));
  const host = buildStatus({ manifests: ms, entries, loaderDefault: "particle-*", bootedId: "3", etc: new Map() });
  const objs: Record<string, string[]> = { 1: [dig("1"), dig("c")], 2: [dig("2"), dig("c")], 3: [dig("3"), dig("c")], 4: [dig("4")], 5: [dig("5")] };
  const plan = planCleanup({
    host,
    deployments: ms.map((m) => m.id),
    entries,
    imageOf: new Map(ms.map((m) => [m.id, m.imageDigest])),
    objectsOf: (id) => objs[id]!,
    objects: [dig("1"), dig("2"), dig("3"), dig("4"), dig("5"), dig("c"), dig("f")],
    images: ms.map((m) => m.imageDigest),
    bootDirs: [dig("b"), dig("1"), dig("2"), dig("3"), dig("4"), dig("e")],
  });

  it("keeps booted, staged and one rollback", () => {
    expect(keptDeployments(host).sort()).toEqual(["2", "3", "4"]);
    expect(plan.keep.sort()).toEqual(["2", "3", "4"]);
    expect(plan.removeDeployments).toEqual(["1", "5"]);
  });
  it("removes the entries of removed deployments and dangling entries", () => {
    expect(plan.removeEntries.sort()).toEqual(["particle-13-1.conf", "particle-13-9.conf"]);
  });
  it("removes objects and images no kept deployment uses, keeps shared ones", () => {
    expect(plan.removeObjects.sort()).toEqual([dig("1"), dig("5"), dig("f")]);
    expect(plan.removeImages.sort()).toEqual([dig("1"), dig("5")]);
  });
  it("removes kernel/initramfs dirs no kept entry names, keeps shared kernels", () => {
    expect(plan.removeBootDirs.sort()).toEqual([dig("1"), dig("e")]);
  });
  it("with nothing to remove the plan is empty", () => {
    const p = planCleanup({ host, deployments: ["2", "3", "4"], entries: entries.filter((e) => ["2", "3", "4"].includes(e.deployId!)), imageOf: new Map(), objectsOf: () => [], objects: [], images: [], bootDirs: [] });
    expect(p).toMatchObject({ removeDeployments: [], removeEntries: [], removeObjects: [], removeImages: [], removeBootDirs: [] });
  });
});

describe("free-space check", () => {
  it("passes with room to spare", () => expect(checkSpace([{ what: "ESP", needed: 10, free: 10 + SPACE_MARGIN }])).toBeUndefined());
  it("names each short filesystem with the numbers", () => {
    const e = checkSpace([{ what: "ESP /efi", needed: 60 * 1048576, free: 20 * 1048576 }, { what: "sysroot /", needed: 1, free: 1e12 }, { what: "x", needed: 0, free: 0 }]);
    expect(e?.message).toMatch(/ESP \/efi: needs 60\.0 MiB .* only 20\.0 MiB is free \(62914560 bytes needed, 20971520 free\)/);
    expect(e?.message).not.toMatch(/sysroot/);
    expect(e?.message).toMatch(/\n  x: needs 0\.0 MiB/);
    expect(e?.message).toMatch(/nothing was written/);
  });
});

describe("/etc carry-over conflicts", () => {
  it.each([
    ["a local file where the image has a dir", [{ path: "a", kind: "file" as const }], { a: "dir" }, [{ path: "a", local: "file", image: "dir" }]],
    ["a local symlink where the image has a dir", [{ path: "a", kind: "symlink" as const }], { a: "dir" }, [{ path: "a", local: "symlink", image: "dir" }]],
    ["a local dir over an image file is fine", [{ path: "a", kind: "dir" as const }], { a: "file" }, []],
    ["a whiteout (local deletion) is fine", [{ path: "a", kind: "whiteout" as const }], { a: "dir" }, []],
    ["a new local file is fine", [{ path: "new", kind: "file" as const }], {}, []],
    ["nested: only the top of a conflict", [{ path: "d", kind: "dir" as const }, { path: "d/x", kind: "file" as const }], { d: "dir", "d/x": "dir" }, [{ path: "d/x", local: "file", image: "dir" }]],
  ])("%s", (_n, upper, image, want) => expect(planConflicts(upper, (p) => (image as Record<string, any>)[p])).toEqual(want));

  it("walks an upper directory parents first, with kinds", () => {
    const d = mkdtempSync(join(tmpdir(), "upper-"));
    mkdirSync(join(d, "sub"));
    writeFileSync(join(d, "sub/f"), "x");
    symlinkSync("f", join(d, "l"));
    expect(walkUpper(d)).toEqual([{ path: "l", kind: "symlink" }, { path: "sub", kind: "dir" }, { path: "sub/f", kind: "file" }]);
    expect(kindOf(join(d, "missing"))).toBeUndefined();
    if (process.getuid?.() === 0) {
      execFileSync("mknod", [join(d, "wh"), "c", "0", "0"]);
      expect(kindOf(join(d, "wh"))).toBe("whiteout");
    }
  });

  it("object digests from redirect xattrs", () => {
    expect(objectFromRedirect(`/ab/${"c".repeat(62)}`)).toBe(`ab${"c".repeat(62)}`);
    expect(objectFromRedirect(`ab/${"c".repeat(62)}\0`)).toBe(`ab${"c".repeat(62)}`);
    expect(objectFromRedirect("/etc/passwd")).toBeUndefined();
  });
});
