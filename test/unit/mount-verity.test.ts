// checkImage and sealObjects with a fake FS_IOC_{MEASURE,ENABLE}_VERITY (the host has no
// fs-verity, and vitest runs on Node without bun:ffi).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkImage as check, sealObjects, type ImageCheckInput, type Measure } from "../../runtime/src/mounts/verity.ts";
import * as digests from "../../runtime/src/mounts/userspace-digest.ts";

// Node cannot require() the TypeScript digest module lazily as Bun does; hand it in.
const checkImage = (i: ImageCheckInput, m?: Measure) => check(i, m, () => digests);
import { verityDigest } from "../../runtime/src/verity/digest.ts";

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), "particle-verity-unit-")); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A filesystem with fs-verity: files in `sealed` measure; others get sealed when asked. */
function verityFs(sealed = new Set<string>()): Measure & { calls: [string, boolean][] } {
  const calls: [string, boolean][] = [];
  const f = ((path: string, seal: boolean) => {
    calls.push([path, seal]);
    const digest = verityDigest(readFileSync(path));
    if (sealed.has(path)) return { kind: "measured", digest, sealedNow: false };
    if (!seal) return { kind: "unavailable", reason: `${path} has no fs-verity` };
    sealed.add(path);
    return { kind: "measured", digest, sealedNow: true };
  }) as Measure & { calls: [string, boolean][] };
  f.calls = calls;
  return f;
}
const noVerity: Measure = (path) => ({ kind: "unavailable", reason: `the filesystem holding ${path} does not support fs-verity` });
const readOnly: Measure = (path) => ({ kind: "unavailable", reason: `cannot enable fs-verity on ${path}: its filesystem is mounted read-only (boot with rw)` });

function image(content = "image bytes"): { path: string; digest: string; sha: string } {
  const path = join(dir, "img.erofs");
  writeFileSync(path, content);
  return { path, digest: verityDigest(Buffer.from(content)), sha: createHash("sha256").update(content).digest("hex") };
}

describe("checkImage", () => {
  it("measured by the kernel and matching: verity=require by default", () => {
    const i = image();
    const r = checkImage({ image: i.path, format: "composefs", expected: i.digest, asked: undefined }, verityFs(new Set([i.path])));
    expect(r).toEqual({ method: "fs-verity", sealedNow: false, verity: { overlay: "require", mode: "require", warnings: [] } });
  });
  it("an unsealed image on a verity filesystem is sealed, then checked", () => {
    const i = image();
    const r = checkImage({ image: i.path, format: "erofs", expected: i.digest, asked: "require" }, verityFs());
    expect(r.sealedNow).toBe(true);
    expect(r.method).toBe("fs-verity");
  });
  it("optional with fs-verity: overlay verity=on", () => {
    const i = image();
    expect(checkImage({ image: i.path, format: "composefs", expected: i.digest, asked: "optional" }, verityFs()).verity.overlay).toBe("on");
  });
  it.each([undefined, "require", "optional", "off"] as const)("a digest mismatch is refused (asked %s)", (asked) => {
    const i = image();
    expect(() => checkImage({ image: i.path, format: "composefs", expected: "0".repeat(64), asked }, asked === "require" ? verityFs() : noVerity)).toThrow(/expected 0{64}.*refusing to mount it/);
  });
  it.each([
    [noVerity, /particle\.verity=require: the filesystem holding .* does not support fs-verity/],
    [readOnly, /particle\.verity=require: cannot enable fs-verity .* read-only/],
  ])("require without usable fs-verity is refused", (measure, msg) => {
    const i = image();
    expect(() => checkImage({ image: i.path, format: "composefs", expected: i.digest, asked: "require" }, measure)).toThrow(msg);
  });
  it.each([
    ["optional", "optional", 1],
    [undefined, "optional", 1],
    ["off", "off", 0],
  ] as const)("no fs-verity, asked %s: digest computed in userspace", (asked, mode, warnings) => {
    const i = image();
    const r = checkImage({ image: i.path, format: "composefs", expected: i.digest, asked }, noVerity);
    expect(r.method).toBe("userspace-fs-verity");
    expect(r.verity.mode).toBe(mode);
    expect(r.verity.overlay).toBe("off");
    expect(r.verity.warnings).toHaveLength(warnings);
  });
  it("off never enables fs-verity", () => {
    const i = image();
    const m = verityFs();
    checkImage({ image: i.path, format: "erofs", expected: i.digest, asked: "off" }, m);
    expect(m.calls).toEqual([[i.path, false]]);
  });
  it("squashfs: plain sha256", () => {
    const i = image();
    expect(checkImage({ image: i.path, format: "squashfs", expected: i.sha, asked: "optional" }, noVerity).method).toBe("sha256");
    expect(() => checkImage({ image: i.path, format: "squashfs", expected: i.digest, asked: "optional" }, noVerity)).toThrow(/sha256 digest is/);
  });
  it("a missing image", () => {
    expect(() => checkImage({ image: join(dir, "nope"), format: "erofs", expected: "0".repeat(64), asked: "off" })).toThrow(/does not exist/);
  });
});

describe("sealObjects", () => {
  const objects = () => join(dir, "objects");
  function addObject(content: string, name?: string): string {
    const d = name ?? verityDigest(Buffer.from(content));
    mkdirSync(join(objects(), d.slice(0, 2)), { recursive: true });
    const p = join(objects(), d.slice(0, 2), d.slice(2));
    writeFileSync(p, content);
    return p;
  }
  const stamp = () => join(dir, "sealed");

  it("seals every object, checks its name, writes the stamp; the next boot skips the walk", () => {
    addObject("a");
    addObject("b");
    addObject("c");
    writeFileSync(join(dir, "stray"), "x");
    mkdirSync(join(objects(), "zz"), { recursive: true });
    const m = verityFs();
    expect(sealObjects(objects(), "require", stamp(), m)).toEqual({ checked: 3, sealed: 3, warnings: [] });
    expect(existsSync(stamp())).toBe(true);
    expect(sealObjects(objects(), "require", stamp(), m)).toEqual({ checked: 0, sealed: 0, warnings: [] });
  });
  it("already-sealed objects are checked, not re-sealed", () => {
    const p = addObject("a");
    expect(sealObjects(objects(), "require", stamp(), verityFs(new Set([p])))).toEqual({ checked: 1, sealed: 0, warnings: [] });
  });
  it("a corrupt object: refused under require, a warning (and no stamp) under optional", () => {
    const p = addObject("tampered", verityDigest(Buffer.from("original")));
    expect(() => sealObjects(objects(), "require", stamp(), verityFs())).toThrow(new RegExp(`particle\\.verity=require: object ${p} is corrupt`));
    const r = sealObjects(objects(), "optional", stamp(), verityFs());
    expect(r.warnings).toEqual([expect.stringMatching(/is corrupt/)]);
    expect(existsSync(stamp())).toBe(false);
  });
  it.each([
    ["require", noVerity],
    ["require", readOnly],
  ] as const)("no usable fs-verity under %s is fatal", (mode, m) => {
    addObject("a");
    expect(() => sealObjects(objects(), mode, stamp(), m)).toThrow(/^particle\.verity=require: .*objects stay unsealed/);
  });
  it("no usable fs-verity under optional: one warning, then stop", () => {
    addObject("a");
    addObject("b");
    const r = sealObjects(objects(), "optional", stamp(), readOnly);
    expect(r.checked).toBe(1);
    expect(r.warnings).toHaveLength(1);
  });
});
