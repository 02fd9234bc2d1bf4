// The mounts module (mountDeployment, unmountTree, the executor) on the host kernel, as root.
// Its syscalls need Bun, so each call runs in a Bun process (boot/test/mount-driver.ts).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stageFixture, type Fixture } from "../../boot/test/fixture.ts";
import { BUN, REPO, child, dropArena, findmnt, makeArena, mountPointsUnder, type Arena } from "../../boot/test/arena.ts";

let phys: string;
let a: Arena;
const fx: Record<string, Fixture> = {};

function driver(req: object): { ok?: any; error?: string } {
  const r = spawnSync(BUN, [join(REPO, "boot/test/mount-driver.ts"), JSON.stringify(req)], { encoding: "utf8" });
  if (!r.stdout) throw new Error(`mount-driver produced nothing: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const target = (name: string) => {
  const t = join(a.dir, name);
  mkdirSync(t, { recursive: true });
  return t;
};
const loops = () => spawnSync("losetup", ["-a"], { encoding: "utf8" }).stdout;

beforeAll(() => {
  phys = mkdtempSync(join(tmpdir(), "particle-mount-phys-"));
  fx.c = stageFixture(phys, "c", "composefs");
  fx.e = stageFixture(phys, "e", "erofs");
  fx.q = stageFixture(phys, "q", "squashfs");
});

afterEach(() => {
  if (a) dropArena(a);
});

afterAll(() => {
  if (phys) rmSync(phys, { recursive: true, force: true });
});

describe("mountDeployment", () => {
  it("composefs, read-only root only; unmountTree takes it down", () => {
    a = makeArena(phys, "mount");
    const t = target("root");
    const r = driver({ op: "mount", sysroot: a.sysroot, id: "c", target: t, verity: "optional" });
    expect(r.error).toBeUndefined();
    expect(r.ok).toMatchObject({ id: "c", format: "composefs", verity: { mode: "optional", overlay: "off" }, imageCheck: "userspace-fs-verity" });
    expect(r.ok.warnings[0]).toMatch(/fs-verity is not available/);
    expect(r.ok.overlayOptions[0]).toMatch(/^metacopy=on,redirect_dir=on,lowerdir\+=/);
    const m = findmnt(t)!;
    expect(m.fstype).toBe("overlay");
    expect(m.children).toBeUndefined();
    expect(readFileSync(join(t, "usr/bin/hello"), "utf8")).toBe("#!/bin/sh\necho hello\n");
    // The helper mount of the EROFS metadata image is gone (overlayfs holds its own clone).
    expect(mountPointsUnder(tmpdir()).filter((p) => p.includes("particle-mount-") && !p.startsWith(a.dir))).toEqual([]);
    expect(driver({ op: "unmount", target: t }).ok).toEqual([t]);
    expect(findmnt(t)).toBeUndefined();
  });

  it("persistent writable layout and overlayroot tmpfs", () => {
    a = makeArena(phys, "mount");
    const p = target("p");
    expect(driver({ op: "mount", sysroot: a.sysroot, id: "e", target: p, verity: "off", writable: "persistent" }).error).toBeUndefined();
    const pm = findmnt(p)!;
    expect(pm.fstype).toBe("erofs");
    expect(child(pm, join(p, "etc"))!.fstype).toBe("overlay");
    expect(child(pm, join(p, "var"))).toBeDefined();
    writeFileSync(join(p, "etc/x"), "1");
    expect(existsSync(join(phys, "particle/deploy/e/etc/upper/x"))).toBe(true);
    expect(driver({ op: "unmount", target: p }).ok).toEqual([join(p, "var"), join(p, "etc"), p]);

    const o = target("o");
    expect(driver({ op: "mount", sysroot: a.sysroot, id: "c", target: o, verity: "off", writable: { kind: "tmpfs" } }).error).toBeUndefined();
    const om = findmnt(o)!;
    expect(om.fstype).toBe("overlay");
    expect(om.options).toContain("upperdir=");
    writeFileSync(join(o, "usr/new"), "volatile");
    expect(readFileSync(join(o, "usr/bin/hello"), "utf8")).toContain("hello");
    expect(driver({ op: "unmount", target: o }).ok).toEqual([o]);
  });

  it("squashfs: sha256 checked, loop device freed on unmount", () => {
    a = makeArena(phys, "mount");
    const t = target("q");
    const r = driver({ op: "mount", sysroot: a.sysroot, id: "q", target: t, verity: "require" });
    expect(r.error).toBeUndefined();
    expect(r.ok.imageCheck).toBe("sha256");
    expect(r.ok.loops).toHaveLength(1);
    expect(loops()).toContain(r.ok.loops[0]);
    driver({ op: "unmount", target: t });
    expect(loops()).not.toContain(`${r.ok.loops[0]}:`);
  });

  it("refuses a wrong pinned digest and verity=require without fs-verity", () => {
    a = makeArena(phys, "mount");
    const t = target("x");
    expect(driver({ op: "mount", sysroot: a.sysroot, id: "c", target: t, verity: "off", expectedDigest: "0".repeat(64) }).error).toMatch(/particle\.image=0{64} does not match deployment c/);
    expect(driver({ op: "mount", sysroot: a.sysroot, id: "c", target: t, verity: "require" }).error).toMatch(/particle\.verity=require: .*does not support fs-verity/);
    expect(findmnt(t)).toBeUndefined();
  });
});

describe("executor details", () => {
  it("EROFS through a loop device (the path taken when the kernel refuses a file source)", () => {
    a = makeArena(phys, "mount");
    const t = target("loop");
    const r = driver({ op: "plan", steps: [{ op: "image", image: fx.e!.image.replace(phys, a.sysroot), target: t, fsType: "erofs", loop: "always" }] });
    expect(r.error).toBeUndefined();
    const m = findmnt(t)!;
    expect(m.fstype).toBe("erofs");
    expect(m.source).toMatch(/^\/dev\/loop\d+$/);
    expect(readFileSync(join(t, "etc/hostname"), "utf8")).toBe("particle-test\n");
    driver({ op: "unmount", target: t });
    expect(loops()).not.toContain(`${m.source}:`);
  });

  it("overlay options: EINVAL moves on to the next syntax", () => {
    a = makeArena(phys, "mount");
    const lower = target("lower");
    const lower2 = target("lower2");
    const t = target("ovl");
    writeFileSync(join(lower, "f"), "x");
    const good = `lowerdir=${lower}:${lower2}`;
    const r = driver({ op: "plan", steps: [{ op: "overlay", target: t, readOnly: true, options: [`lowerdir=${lower},no_such_option=1`, good] }] });
    expect(r.error).toBeUndefined();
    expect(r.ok.overlayOptions).toEqual([good]);
    expect(readFileSync(join(t, "f"), "utf8")).toBe("x");
  });

  it("a failing step unmounts what the plan mounted and names the step", () => {
    a = makeArena(phys, "mount");
    const t = target("fail");
    const r = driver({ op: "plan", steps: [{ op: "tmpfs", target: t, options: "mode=0755" }, { op: "bind", source: "/nonexistent-src", target: t, recursive: false }] });
    expect(r.error).toMatch(/^bind-mounting \/nonexistent-src on .*: mount .*ENOENT/);
    expect(findmnt(t)).toBeUndefined();
  });

  it("unmountTree without lazy refuses a busy mount, with lazy detaches it", () => {
    a = makeArena(phys, "mount");
    const t = target("busy");
    driver({ op: "plan", steps: [{ op: "tmpfs", target: t, options: "mode=0755" }] });
    const { spawn } = require("node:child_process") as typeof import("node:child_process");
    const holder = spawn("sleep", ["30"], { cwd: t });
    try {
      expect(driver({ op: "unmount", target: t }).error).toMatch(/EBUSY/);
      expect(driver({ op: "unmount", target: t, lazy: true }).ok).toEqual([t]);
      expect(findmnt(t)).toBeUndefined();
    } finally {
      holder.kill();
    }
  });
});
