// Images built by the standard tools, not by our fixtures (issue 12): umoci (repack of an unpacked
// bundle, insert, whiteout insert) and buildah (bud with chroot isolation, vfs storage kept under
// the test's own directory). Each image is staged by the compiled particle, mounted with the real
// kernel, and compared with `umoci raw unpack` of the same image: contents, modes, owners,
// symlinks, times and xattrs. Needs root.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, copyFileSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { compareTrees } from "./lib/treecmp.ts";
import { Mounts, particle, stageJson } from "./lib/particle.ts";
import { blobPathOf } from "./lib/oci-layout.ts";

const base = mkdtempSync("/var/tmp/particle-interop-");
const sysroot = join(base, "sysroot");
const mnt = join(base, "mnt");
const policy = join(base, "policy.json");
const mounts = new Mounts(sysroot);

const sh = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] }).toString();
const touch = (p: string, when: string) => sh("touch", ["-h", "-d", `${when} UTC`, p]);
const PRE_EPOCH = "1969-12-31 23:59:59.000000123";

beforeAll(() => {
  // The test's own policy, so the host's policy.json does not decide the outcome.
  writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
});

afterAll(() => {
  for (const m of mounts.live.reverse()) particle(["unmount", m]);
  execFileSync("sh", ["-c", `grep -o ' ${base}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null; true`]);
  rmSync(base, { recursive: true, force: true });
});

/** The entries of each layer of `layout:tag`, bottom first, as `tar -t` lists them. */
function layerListings(layout: string, tag: string): string[][] {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const desc = index.manifests.find((m: any) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  const manifest = JSON.parse(readFileSync(blobPathOf(layout, desc.digest), "utf8"));
  // umoci's whiteout-only layers end without the two zero blocks: GNU tar lists them, then complains.
  const list = (blob: string) => spawnSync("tar", ["-tzf", blob], { encoding: "utf8" }).stdout;
  return manifest.layers.map((l: any) => list(blobPathOf(layout, l.digest)).split("\n").filter(Boolean).map((p) => p.replace(/^\.\//, "")));
}

/** Stages `layout:tag`, mounts it, and compares it with umoci's unpack of the same image. */
function stageAndCompare(layout: string, tag: string, check: (root: string) => void): string[] {
  const expected = join(base, `umoci-unpack-${tag}`);
  sh("umoci", ["raw", "unpack", "--image", `${layout}:${tag}`, expected]);
  const r = stageJson(`oci:${layout}:${tag}`, sysroot, ["--signature-policy", policy]);
  const m = join(mnt, tag);
  mounts.mount(r.id, m);
  try {
    check(m);
    return compareTrees(expected, m, { xattrs: true });
  } finally {
    mounts.unmount(m);
  }
}

describe("an image built with umoci", () => {
  const layout = join(base, "umoci");
  const bundle = (n: number) => join(base, `bundle-${n}`);
  const rootfs = (n: number) => join(bundle(n), "rootfs");

  it("replaces a directory by a file (with whiteouts under it), inserts under a symlinked /lib and /bin, whiteouts nothing", () => {
    sh("umoci", ["init", "--layout", layout]);
    sh("umoci", ["new", "--image", `${layout}:base`]);
    // Layer 1: a usr-merged tree with owners, setuid, a hardlink, xattrs and a file from before 1970.
    sh("umoci", ["unpack", "--image", `${layout}:base`, bundle(1)]);
    const r1 = rootfs(1);
    for (const d of ["usr/lib", "usr/bin", "d/sub", "etc", "var", "sysroot", "home/user"]) mkdirSync(join(r1, d), { recursive: true });
    symlinkSync("usr/lib", join(r1, "lib"));
    symlinkSync("usr/bin", join(r1, "bin"));
    writeFileSync(join(r1, "usr/lib/z"), "z\n");
    writeFileSync(join(r1, "usr/bin/tool"), "#!/bin/sh\n");
    chmodSync(join(r1, "usr/bin/tool"), 0o4755);
    writeFileSync(join(r1, "d/a"), "a\n");
    writeFileSync(join(r1, "d/sub/b"), "b\n");
    writeFileSync(join(r1, "etc/os-release"), "ID=interop\nVERSION_ID=1\n");
    linkSync(join(r1, "etc/os-release"), join(r1, "usr/lib/os-release"));
    writeFileSync(join(r1, "home/user/own"), "mine\n");
    chownSync(join(r1, "home/user/own"), 1000, 1000);
    chownSync(join(r1, "home/user"), 1000, 1000);
    sh("setfattr", ["-n", "user.interop", "-v", "yes", join(r1, "usr/lib/z")]);
    writeFileSync(join(r1, "old"), "old\n");
    touch(join(r1, "old"), PRE_EPOCH);
    sh("umoci", ["repack", "--image", `${layout}:v1`, bundle(1)]);
    // Layer 2: umoci's diff of a directory that became a file.
    sh("umoci", ["unpack", "--image", `${layout}:v1`, bundle(2)]);
    rmSync(join(rootfs(2), "d"), { recursive: true });
    writeFileSync(join(rootfs(2), "d"), "now a file\n");
    sh("umoci", ["repack", "--image", `${layout}:v2`, bundle(2)]);
    // Layers 3-5: paths written through the lower layer's symlinks, and whiteouts of nothing.
    const ins = join(base, "inserted");
    writeFileSync(ins, "inserted\n");
    const plugins = join(base, "plugins");
    mkdirSync(plugins);
    writeFileSync(join(plugins, "p1"), "p1\n");
    sh("umoci", ["insert", "--image", `${layout}:v2`, "--tag", "v3", ins, "/lib/inserted"]);
    sh("umoci", ["insert", "--image", `${layout}:v3`, plugins, "/bin/plugins"]);
    sh("umoci", ["insert", "--image", `${layout}:v3`, "--whiteout", "/nonexistent/thing"]);
    sh("umoci", ["insert", "--image", `${layout}:v3`, "--whiteout", "/usr/lib/nothing-here"]);

    // The layers really hold the cases (else this test would stop testing them).
    const layers = layerListings(layout, "v3");
    expect(layers).toHaveLength(6);
    expect(layers[1]).toEqual(expect.arrayContaining(["d", "d/.wh.a", "d/.wh.sub"]));
    expect(layers[2]).toEqual(["lib/inserted"]);
    expect(layers[3]).toEqual(expect.arrayContaining(["bin/plugins/", "bin/plugins/p1"]));
    expect(layers[4]).toEqual(["nonexistent/.wh.thing"]);
    expect(layers[5]).toEqual(["usr/lib/.wh.nothing-here"]);

    const diffs = stageAndCompare(layout, "v3", (m) => {
      expect(readFileSync(join(m, "d"), "utf8")).toBe("now a file\n");
      expect(lstatSync(join(m, "lib")).isSymbolicLink()).toBe(true);
      expect(lstatSync(join(m, "bin")).isSymbolicLink()).toBe(true);
      expect(readFileSync(join(m, "usr/lib/inserted"), "utf8")).toBe("inserted\n");
      expect(readFileSync(join(m, "usr/bin/plugins/p1"), "utf8")).toBe("p1\n");
      // Go's tar writer (umoci, buildah) keeps whole seconds ("mtime=-1"); the comparison checks the exact value.
      expect(lstatSync(join(m, "old"), { bigint: true }).mtimeNs < 0n).toBe(true);
    });
    expect(diffs).toEqual([]);
  });
});

describe("an image built with buildah", () => {
  const layout = join(base, "buildah");
  const ctx = join(base, "ctx");
  const storage = ["--root", join(base, "storage"), "--runroot", join(base, "run"), "--storage-driver", "vfs"];

  /** A tiny usr-merged root that can run `RUN`: dash, a few coreutils and their libraries. */
  function tinyRoot(dir: string): void {
    for (const d of ["usr/bin", "usr/lib/x86_64-linux-gnu", "usr/lib64", "etc", "var", "sysroot", "d/sub"]) mkdirSync(join(dir, d), { recursive: true });
    for (const [l, t] of [["lib", "usr/lib"], ["lib64", "usr/lib64"], ["bin", "usr/bin"]]) symlinkSync(t!, join(dir, l!));
    copyFileSync("/bin/dash", join(dir, "usr/bin/sh"));
    chmodSync(join(dir, "usr/bin/sh"), 0o755);
    const bins = ["rm", "mkdir", "ln", "chmod", "touch"];
    for (const b of bins) {
      copyFileSync(`/bin/${b}`, join(dir, "usr/bin", b));
      chmodSync(join(dir, "usr/bin", b), 0o755);
    }
    const libs = new Set(sh("ldd", ["/bin/dash", ...bins.map((b) => `/bin/${b}`)]).match(/\/\S+\.so[.\d]*/g));
    for (const lib of libs) copyFileSync(lib, join(dir, "usr", lib.replace(/^\/usr/, "").replace(/^\//, "")));
    writeFileSync(join(dir, "d/a"), "a\n");
    writeFileSync(join(dir, "d/sub/b"), "b\n");
    writeFileSync(join(dir, "etc/os-release"), "ID=interop\n");
    writeFileSync(join(dir, "old"), "old\n");
    touch(join(dir, "old"), PRE_EPOCH);
  }

  it("bud (ADD a root tarball, RUN that removes and replaces, COPY through a symlink), pushed to an oci: layout", () => {
    const root = join(base, "tiny-root");
    tinyRoot(root);
    mkdirSync(ctx);
    sh("tar", ["--create", "--format=pax", "--numeric-owner", "--file", join(ctx, "rootfs.tar"), "-C", root, "."]);
    writeFileSync(join(ctx, "extra"), "extra\n");
    writeFileSync(join(ctx, "Base"), "FROM scratch\nADD rootfs.tar /\n");
    writeFileSync(join(ctx, "Upper"), [
      "FROM localhost/interop-base:1",
      "RUN rm -rf /d /etc/os-release && echo file > /d && mkdir -p /lib/added && echo x > /lib/added/x && touch -d '1969-12-31 23:59:59.5' /lib/added/x",
      "COPY extra /lib/extra",
      "",
    ].join("\n"));
    sh("buildah", [...storage, "bud", "--isolation", "chroot", "--layers", "-q", "-t", "localhost/interop-base:1", "-f", "Base", "."], ctx);
    sh("buildah", [...storage, "bud", "--isolation", "chroot", "--layers", "-q", "-t", "localhost/interop:1", "-f", "Upper", "."], ctx);
    sh("buildah", [...storage, "push", "-q", "localhost/interop:1", `oci:${layout}:built`]);

    const layers = layerListings(layout, "built");
    expect(layers).toHaveLength(3);
    expect(layers[1]).toEqual(expect.arrayContaining(["d", "etc/.wh.os-release", "usr/lib/added/x"]));

    const diffs = stageAndCompare(layout, "built", (m) => {
      expect(readFileSync(join(m, "d"), "utf8")).toBe("file\n");
      expect(lstatSync(join(m, "lib")).isSymbolicLink()).toBe(true);
      expect(readFileSync(join(m, "usr/lib/extra"), "utf8")).toBe("extra\n");
      expect(lstatSync(join(m, "old"), { bigint: true }).mtimeNs < 0n).toBe(true);
    });
    expect(diffs).toEqual([]);
  });
});
