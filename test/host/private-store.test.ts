// The store must not leak file contents to local users: /etc/shadow (mode 0000 in the tree) used to
// become a 0644 object in a world-readable objects/ (the class of rpm-ostree's CVE-2024-2905). Read
// as an unprivileged user (nobody, through setpriv), never as root, which bypasses every mode.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Mounts, particle, particleOk, stageJson } from "./lib/particle.ts";
import { tarDir, writeImage } from "./lib/oci-layout.ts";

const base = mkdtempSync("/var/tmp/particle-private-");
const src = join(base, "src");
const SECRET = "root:$6$PARTICLE-SECRET-HASH$abcdefghijklmnop:19000:0:99999:7:::";
const NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];

const asNobody = (cmd: string[]) => spawnSync(NOBODY[0]!, [...NOBODY.slice(1), ...cmd], { encoding: "utf8" });
/** Files under `dir` whose contents nobody can read and that hold the secret. */
const nobodyFindsSecret = (dir: string): string => asNobody(["grep", "-rlF", "--", "PARTICLE-SECRET-HASH", dir]).stdout.trim();

function contentFiles(root: string): Array<{ path: string; mode: number }> {
  const out: Array<{ path: string; mode: number }> = [];
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile()) out.push({ path: p, mode: lstatSync(p).mode & 0o7777 });
    }
  };
  visit(root);
  return out;
}

function expectPrivate(sysroot: string): void {
  const store = join(sysroot, "particle");
  for (const d of ["objects", "images", "cache", "tmp"]) expect((statSync(join(store, d)).mode & 0o7777).toString(8), d).toBe("700");
  const files = [...contentFiles(join(store, "objects")), ...contentFiles(join(store, "images"))];
  expect(files.length).toBeGreaterThan(3);
  expect(files.filter((f) => f.mode !== 0o400).map((f) => `${f.path} ${f.mode.toString(8)}`)).toEqual([]);
  expect(nobodyFindsSecret(store)).toBe("");
  // Not even the names: nobody cannot list which objects the store holds.
  expect(asNobody(["ls", join(store, "objects")]).status).not.toBe(0);
}

const mounts = new Mounts(join(base, "sys-composefs"));

beforeAll(() => {
  // mkdtemp makes base 0700; nobody must be able to walk to the mounts and the store itself.
  chmodSync(base, 0o755);
  mkdirSync(join(src, "etc"), { recursive: true });
  mkdirSync(join(src, "usr/bin"), { recursive: true });
  writeFileSync(join(src, "etc/shadow"), `${SECRET}\n`);
  chmodSync(join(src, "etc/shadow"), 0o000);
  writeFileSync(join(src, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(src, "etc/os-release"), "ID=debian\nVERSION_ID=13\n");
  writeFileSync(join(src, "usr/bin/tool"), "#!/bin/sh\necho setuid tool\n");
  chmodSync(join(src, "usr/bin/tool"), 0o4755);
  writeFileSync(join(src, "usr/bin/run"), "#!/bin/sh\necho run\n");
  chmodSync(join(src, "usr/bin/run"), 0o755);
});

afterAll(() => {
  for (const m of mounts.live.reverse()) particle(["unmount", m]);
  execFileSync("sh", ["-c", `grep -o ' ${base}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null; true`]);
  rmSync(base, { recursive: true, force: true });
});

describe("a private store", () => {
  it("composefs: objects are 0400 under 0700 directories; the mounted root keeps the tree's modes", () => {
    const sysroot = join(base, "sys-composefs");
    const r = stageJson(`dir:${src}`, sysroot);
    chmodSync(sysroot, 0o755);
    expectPrivate(sysroot);
    const mnt = join(base, "mnt");
    mounts.mount(r.id, mnt);
    // Through the mount, the image's metadata decides: passwd is readable, shadow is not, and the
    // setuid tool keeps its bits although its object has none.
    expect(asNobody(["cat", join(mnt, "etc/passwd")]).stdout).toContain("root:x:0:0");
    const shadow = asNobody(["cat", join(mnt, "etc/shadow")]);
    expect(shadow.status).not.toBe(0);
    expect(shadow.stderr).toContain("Permission denied");
    expect((statSync(join(mnt, "usr/bin/tool")).mode & 0o7777).toString(8)).toBe("4755");
    expect(asNobody([join(mnt, "usr/bin/run")]).stdout).toBe("run\n");
    mounts.unmount(mnt);
  });

  it("full erofs and squashfs images are private too", () => {
    for (const format of ["erofs", "squashfs"]) {
      const sysroot = join(base, `sys-${format}`);
      stageJson(`dir:${src}`, sysroot, ["--format", format]);
      chmodSync(sysroot, 0o755);
      const images = contentFiles(join(sysroot, "particle/images"));
      expect(images.map((f) => f.mode.toString(8))).toEqual(["400"]);
      expect((statSync(join(sysroot, "particle/images")).mode & 0o777).toString(8)).toBe("700");
      expect(nobodyFindsSecret(join(sysroot, "particle"))).toBe("");
    }
  });

  it("the OCI blob and layer caches are private", () => {
    const layout = join(base, "layout");
    writeImage(layout, { tag: "v1", layers: [{ tar: tarDir(src), compression: "none" }] });
    const sysroot = join(base, "sys-oci");
    particleOk(["stage", `oci:${layout}:v1`, "--sysroot", sysroot, "--insecure-no-verify-signatures"]);
    chmodSync(sysroot, 0o755);
    expect(readdirSync(join(sysroot, "particle/cache")).sort()).toEqual(expect.arrayContaining(["oci", "oci-layers"]));
    expectPrivate(sysroot);
  });

  it("a store written before this fix is made private by the next write", () => {
    const sysroot = join(base, "sys-composefs");
    const store = join(sysroot, "particle");
    // What older versions left: 0755 directories, 0644 objects, no stamp.
    for (const d of ["objects", "images", "cache", "tmp"]) chmodSync(join(store, d), 0o755);
    for (const fan of readdirSync(join(store, "objects"))) chmodSync(join(store, "objects", fan), 0o755);
    for (const f of [...contentFiles(join(store, "objects")), ...contentFiles(join(store, "images"))]) chmodSync(f.path, 0o644);
    unlinkSync(join(store, ".private-v1"));
    // The check above is not vacuous: this is the leak.
    expect(nobodyFindsSecret(store)).not.toBe("");
    const next = particle(["stage", `dir:${src}`, "--sysroot", sysroot]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/made \d+ store files private/);
    expectPrivate(sysroot);
    particleOk(["verify", "--sysroot", sysroot]);
  });
});
