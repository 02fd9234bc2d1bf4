// sealInstalledStore with a fake FS_IOC_{MEASURE,ENABLE}_VERITY (the host has no fs-verity, and
// vitest runs on Node without bun:ffi); the real kernel's answer on this host is in the host tier.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sealInstalledStore } from "../../runtime/src/install/seal-store.ts";
import type { Measure } from "../../runtime/src/mounts/verity.ts";
import { deployDir, imagePath, objectPath, storeLayout } from "../../runtime/src/store/layout.ts";
import { verityDigest } from "../../runtime/src/verity/digest.ts";
import type { Manifest } from "../../runtime/src/manifest.ts";

let root: string;
beforeEach(() => { root = mkdtempSync(join(tmpdir(), "particle-install-seal-")); });
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A kernel with fs-verity: every file measures once sealed, and sealing is recorded. */
function verityKernel(): Measure & { sealed: Set<string> } {
  const sealed = new Set<string>();
  const f = ((path: string, seal: boolean) => {
    const digest = verityDigest(readFileSync(path));
    if (sealed.has(path)) return { kind: "measured", digest, sealedNow: false };
    if (!seal) return { kind: "unavailable", reason: `${path} has no fs-verity` };
    sealed.add(path);
    return { kind: "measured", digest, sealedNow: true };
  }) as Measure & { sealed: Set<string> };
  f.sealed = sealed;
  return f;
}

/** A store as staging leaves it: an image, two objects, the deployment's directory. */
function store(format: Manifest["format"], imageBytes = "image"): { m: Manifest; objects: string[]; image: string } {
  const l = storeLayout(root);
  const objects = ["one", "two"].map((c) => {
    const p = objectPath(l, verityDigest(Buffer.from(c)));
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, c);
    return p;
  });
  const m = { schema: 1, id: "1", format, imageDigest: verityDigest(Buffer.from("image")), source: "dir:/t", created: "2026-12-03T00:00:00Z", files: 2, bytes: 6 } as Manifest;
  const image = imagePath(l, m.imageDigest, format);
  mkdirSync(join(image, ".."), { recursive: true });
  writeFileSync(image, imageBytes);
  mkdirSync(deployDir(l, "1"), { recursive: true });
  return { m, objects, image };
}

const stamp = () => join(deployDir(storeLayout(root), "1"), "sealed");

describe("sealInstalledStore", () => {
  it("an installing kernel with fs-verity: the image and every object sealed, the deployment stamped", () => {
    const { m, objects, image } = store("composefs");
    const k = verityKernel();
    expect(sealInstalledStore(root, m, k)).toEqual({ kind: "sealed", image: true, objects: 2 });
    expect([...k.sealed].sort()).toEqual([image, ...objects].sort());
    // What particle-boot's first boot looks at to decide it has nothing to write.
    expect(existsSync(stamp())).toBe(true);
  });
  it("without fs-verity: nothing written, the first boot seals", () => {
    const { m } = store("composefs");
    const none: Measure = (p) => ({ kind: "unavailable", reason: `the filesystem holding ${p} does not support fs-verity` });
    expect(sealInstalledStore(root, m, none)).toEqual({ kind: "first-boot", reason: expect.stringMatching(/does not support fs-verity/) });
    expect(existsSync(stamp())).toBe(false);
  });
  it("an erofs image is sealed alone (it has no objects); squashfs is left to its sha256", () => {
    const { m } = store("erofs");
    expect(sealInstalledStore(root, m, verityKernel())).toEqual({ kind: "sealed", image: true, objects: 0 });
    expect(existsSync(stamp())).toBe(false);
    const k = verityKernel();
    expect(sealInstalledStore(root, { ...m, format: "squashfs" }, k).kind).toBe("first-boot");
    expect(k.sealed.size).toBe(0);
  });
  it("an image whose bytes are not what was staged fails the install, naming it", () => {
    const { m, image } = store("composefs", "other bytes");
    expect(() => sealInstalledStore(root, m, verityKernel())).toThrow(`install: image ${image} has fs-verity digest ${verityDigest(Buffer.from("other bytes"))}`);
    expect(existsSync(stamp())).toBe(false);
  });
  it("a corrupt object fails the install rather than the first boot", () => {
    const { m, objects } = store("composefs");
    writeFileSync(objects[0]!, "tampered");
    expect(() => sealInstalledStore(root, m, verityKernel())).toThrow(/^install: the store just written under .* failed its fs-verity check \(particle\.verity=require: object .* is corrupt/);
    expect(existsSync(stamp())).toBe(false);
  });
});
