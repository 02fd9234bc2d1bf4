// particle layer on the host, for real: the Debian trixie guest tree (cached mmdebstrap build) is
// staged as the base, packages from Debian's archive are layered onto it with apt and dpkg in a
// chroot, the deployments are mounted and searched. Needs root and deb.debian.org.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestBase } from "../qemu/lib/guest.ts";
import { PARTICLE, particle, particleOk, stageJson } from "./lib/particle.ts";
import { aptFloor, mountsBelow, storeListing } from "./lib/layer.ts";
import { tarDir, writeImage } from "./lib/oci-layout.ts";
import { tarBytes } from "./lib/oci-tar.ts";
import { initramfsInputsKey } from "../../runtime/src/deployments/initramfs-reuse.ts";
import { kernelPath } from "../../runtime/src/install/initramfs.ts";
import { readDeployment } from "../../runtime/src/store/deployments.ts";
import { storeLayout } from "../../runtime/src/store/layout.ts";

let dir: string;
let sysroot: string;
let baseTree: string;
let base: Record<string, any>;
const mounted: string[] = [];

const layer = (args: string[]) => JSON.parse(particleOk(["layer", ...args, "--sysroot", sysroot, "--json"]));
const manifest = (id: string) => readDeployment(storeLayout(sysroot), id);

/** Mounts deployment `id` read-only (no fs-verity on the host) for `fn`. */
function withMounted<T>(id: string, fn: (root: string) => T): T {
  const target = join(dir, `mnt-${id}`);
  mkdirSync(target, { recursive: true });
  particleOk(["mount", id, target, "--sysroot", sysroot, "--verity", "off"]);
  mounted.push(target);
  try {
    return fn(target);
  } finally {
    particleOk(["unmount", target]);
    mounted.splice(mounted.indexOf(target), 1);
  }
}

/** After every layer run: nothing mounted under the sysroot, tmp/ empty. */
function expectClean(): void {
  expect(mountsBelow(sysroot)).toEqual([]);
  expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
}

beforeAll(async () => {
  baseTree = await guestBase();
  dir = mkdtempSync("/var/tmp/particle-layer-");
  sysroot = join(dir, "sysroot");
  mkdirSync(sysroot);
  base = stageJson(`dir:${baseTree}`, sysroot);
});
afterAll(() => {
  for (const m of mounted) particle(["unmount", m]);
  if (dir && mountsBelow(dir).length === 0) rmSync(dir, { recursive: true, force: true });
});

describe("particle layer on a Debian trixie tree", () => {
  let hello: Record<string, any>;

  it("layers a small package: a new deployment with its files, the manifest recording base and set", () => {
    const floor = aptFloor(baseTree, join(dir, "floor"), ["hello"], "usr/bin/hello");
    expect(floor.found).toBe(true);
    const t = performance.now();
    hello = layer(["install", "hello", "--from", base.id]);
    const seconds = (performance.now() - t) / 1000;
    console.log(`layer install hello: ${seconds.toFixed(1)} s (apt ${hello.seconds.apt} s, staging ${hello.seconds.stage} s); ` +
      `plain apt-get update + install in a chroot: ${floor.seconds.toFixed(1)} s; ratio ${(seconds / floor.seconds).toFixed(2)}`);
    expect(hello).toMatchObject({ mode: "rebase", lower: base.id, layered: ["hello"], added: ["hello"], base: { id: base.id, imageDigest: base.imageDigest }, modulesChanged: [], dkms: [], initramfs: { reuseLower: true } });
    expect(hello.id).not.toBe(base.id);
    expect(manifest(hello.id)).toMatchObject({ base: { id: base.id, imageDigest: base.imageDigest }, layered: ["hello"], source: `layer:${base.id}`, kernel: manifest(base.id).kernel });
    expectClean();
    withMounted(hello.id, (root) => {
      expect(execFileSync("chroot", [root, "/usr/bin/hello"]).toString()).toBe("Hello, world!\n");
      expect(readFileSync(join(root, "var/lib/dpkg/status"), "utf8")).toMatch(/^Package: hello\nStatus: install ok installed$/m);
      // The database lives in /usr (what particle-boot binds over the shared /var/lib/dpkg), and
      // dpkg in the tree finds it through the link.
      expect(readlinkSync(join(root, "var/lib/dpkg"))).toBe("../../usr/lib/sysimage/dpkg");
      expect(readFileSync(join(root, "usr/lib/sysimage/dpkg/status"), "utf8")).toMatch(/^Package: hello\nStatus: install ok installed$/m);
      expect(execFileSync("chroot", [root, "dpkg", "-S", "/usr/bin/hello"]).toString()).toBe("hello: /usr/bin/hello\n");
      expect(existsSync(join(root, "usr/share/doc/hello/copyright"))).toBe(true);
      // What the chroot needed stays out of the image.
      expect(existsSync(join(root, "usr/sbin/policy-rc.d"))).toBe(false);
      expect(readFileSync(join(root, "etc/resolv.conf"))).toEqual(readFileSync(join(baseTree, "etc/resolv.conf")));
      expect(readdirSync(join(root, "var/lib/apt/lists"))).toEqual([]);
      expect(readdirSync(join(root, "var/cache/apt/archives")).filter((f) => f.endsWith(".deb"))).toEqual([]);
      expect(readdirSync(join(root, "proc"))).toEqual([]);
    });
    expect(JSON.parse(particleOk(["layer", "list", "--from", hello.id, "--sysroot", sysroot, "--json"]))).toEqual(
      { id: hello.id, base: { id: base.id, imageDigest: base.imageDigest }, layered: ["hello"] });
    // The default deployment to layer onto is the newest when nothing is booted.
    expect(particleOk(["layer", "list", "--sysroot", sysroot, "--cmdline", ""]).trim()).toBe("hello");
    const st = JSON.parse(particleOk(["status", "--json", "--sysroot", sysroot, "--cmdline", `particle.deploy=${hello.id}`]));
    expect(st.status.booted).toMatchObject({ id: hello.id, layered: ["hello"], base: { id: base.id } });
  }, 300_000);

  it("staging the layer takes the unchanged files' digests from the lower's image: the same image as a full re-read", () => {
    // Nearly every file of the overlay comes unchanged from the base (composefs): not read again.
    expect(base.format).toBe("composefs");
    expect(hello.filesReused).toBeGreaterThan(hello.files * 0.9);
    // The same tree, staged from a fresh mount of the layered deployment: every file read (no
    // devino cache entry for a new mount's device), the same image digest.
    const t = performance.now();
    const full = withMounted(hello.id, (root) => stageJson(`dir:${root}`, sysroot));
    const seconds = ((performance.now() - t) / 1000).toFixed(1);
    console.log(`layer install hello staged ${hello.files} files, ${hello.filesReused} not read (staging ${hello.seconds.stage} s); a full re-read of the same tree: ${full.files} files, ${full.filesReused} not read, ${seconds} s`);
    expect(full.files).toBe(hello.files);
    expect(full.filesReused).toBeLessThan(full.files / 10);
    expect(full.imageDigest).toBe(hello.imageDigest);
  }, 300_000);

  it("re-applies the layered packages onto a new base (what particle upgrade calls)", () => {
    // The "upgraded" image: the base tree and one more file (an overlay: no 300 MB copy).
    const newTree = join(dir, "new-base");
    for (const d of ["upper/usr/share/particle-test", "work", "root"]) mkdirSync(join(newTree, d), { recursive: true });
    writeFileSync(join(newTree, "upper/usr/share/particle-test/new-base"), "the upgraded image\n");
    execFileSync("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${baseTree},upperdir=${newTree}/upper,workdir=${newTree}/work`, join(newTree, "root")]);
    let nb: Record<string, any>;
    try {
      nb = stageJson(`dir:${join(newTree, "root")}`, sysroot);
    } finally {
      execFileSync("umount", [join(newTree, "root")]);
    }
    // --rebuild-initramfs (a layered driver needed at early boot) overrides the lower's initramfs.
    const r = layer(["reapply", "--from", hello.id, "--onto", nb.id, "--rebuild-initramfs"]);
    expect(r).toMatchObject({ lower: nb.id, base: { id: nb.id, imageDigest: nb.imageDigest }, layered: ["hello"], initramfs: { reuseLower: false, why: "--rebuild-initramfs was given" } });
    expectClean();
    withMounted(r.id, (root) => {
      expect(readFileSync(join(root, "usr/share/particle-test/new-base"), "utf8")).toBe("the upgraded image\n");
      expect(execFileSync("chroot", [root, "/usr/bin/hello"]).toString()).toBe("Hello, world!\n");
    });
  }, 300_000);

  it("removes it again: the base image, byte for byte (same image digest)", () => {
    const r = layer(["remove", "hello", "--from", hello.id]);
    expect(r).toMatchObject({ lower: base.id, layered: [], removed: ["hello"] });
    expect(r.imageDigest).toBe(base.imageDigest);
    expect(manifest(r.id).layered).toEqual([]);
    expectClean();
    withMounted(r.id, (root) => {
      expect(existsSync(join(root, "usr/bin/hello"))).toBe(false);
      expect(readFileSync(join(root, "var/lib/dpkg/status"), "utf8")).not.toMatch(/^Package: hello$/m);
      expect(readFileSync(join(root, "usr/lib/sysimage/dpkg/status"), "utf8")).toMatch(/^Package: dpkg$/m);
    });
  });

  it("a failing apt run leaves no deployment and the store unchanged, and says what apt said", () => {
    const before = storeListing(join(sysroot, "particle"));
    const r = particle(["layer", "install", "particle-no-such-package", "--from", base.id, "--sysroot", sysroot]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/particle: error: apt-get install \(resolving\) failed .*exit 100\):\nE: Unable to locate package particle-no-such-package/);
    expect(storeListing(join(sysroot, "particle"))).toEqual(before);
    expectClean();
    // Refused before apt runs: removing a package of the base image.
    const r2 = particle(["layer", "remove", "bash", "--from", base.id, "--sysroot", sysroot]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/not layered on deployment \d+: bash/);
    expect(storeListing(join(sysroot, "particle"))).toEqual(before);
  });

  it("no network: apt's download error, no deployment, the store unchanged", () => {
    // The lists cached by the runs above: apt resolves the package, then cannot download it.
    expect(readdirSync(join(sysroot, "particle/cache/apt-lists")).some((f) => f.endsWith("_Packages"))).toBe(true);
    const before = storeListing(join(sysroot, "particle"));
    // A network namespace with only a down loopback: apt's lists (cached) resolve, downloads fail.
    const r = particle(["layer", "install", "cowsay", "--from", base.id, "--sysroot", sysroot], { wrap: ["unshare", "--net"] });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/apt-get install failed .*exit 100\):\nE: Failed to fetch http:\/\/deb\.debian\.org\/\S+\s+Temporary failure resolving 'deb\.debian\.org'\n/);
    expect(r.stderr).toMatch(/^E: Failed to fetch \S+\/cowsay_\S+\.deb/m);
    expect(storeListing(join(sysroot, "particle"))).toEqual(before);
    expectClean();
  });

  it("a killed layer run leaves only tmp/ behind: the next command unmounts and clears it", async () => {
    const before = storeListing(join(sysroot, "particle"));
    const child = spawn(PARTICLE, ["layer", "install", "hello", "--from", base.id, "--sysroot", sysroot], { detached: true, stdio: "ignore" });
    const exited = new Promise((res) => child.on("exit", res));
    const t = Date.now();
    // Killed once the chroot is set up (apt running inside), with everything it started.
    while (!mountsBelow(sysroot).some((m) => m.endsWith("/root/proc"))) {
      if (Date.now() - t > 120_000) throw new Error("the layer run never mounted its chroot");
      await new Promise((res) => setTimeout(res, 100));
    }
    process.kill(-child.pid!, "SIGKILL");
    await exited;
    expect(mountsBelow(sysroot).length).toBeGreaterThan(2);
    const r = particle(["layer", "install", "particle-no-such-package", "--from", base.id, "--sysroot", sysroot]);
    expect(r.stderr).toMatch(/E: Unable to locate package particle-no-such-package/);
    expectClean();
    expect(storeListing(join(sysroot, "particle"))).toEqual(before);
  }, 300_000);

  it("a DKMS package builds for the tree's kernel, not the running one; the lower deployment's initramfs serves", () => {
    const kver = manifest(base.id).kernel!;
    expect(kver).not.toBe(release());
    const r = layer(["install", "acpi-call-dkms", "--from", base.id]);
    console.log(`layer install acpi-call-dkms: apt + DKMS ${r.seconds.apt} s, staging ${r.seconds.stage} s`);
    expect(r).toMatchObject({ layered: ["acpi-call-dkms"], headers: `linux-headers-${kver}`, kernel: kver, modulesChanged: [kver] });
    // The layer added modules and rewrote depmod's index only: the module loads from the root
    // after switch-root, so the base's initramfs boots it (rpm-ostree's default), dracut is not run.
    expect(r.initramfs).toEqual({ reuseLower: true, why: expect.stringMatching(/^the layer only added \d+ file\(s\) among the initramfs inputs/) });
    expect(r.dkms).toEqual([expect.stringMatching(new RegExp(`^acpi-call/[^,]+, ${kver.replaceAll("+", "\\+")}, x86_64: installed`))]);
    expectClean();
    const keyOf = (root: string) => initramfsInputsKey(root, kver, kernelPath(root, kver)!);
    const baseKey = withMounted(base.id, keyOf);
    withMounted(r.id, (root) => {
      const mods = join(root, "usr/lib/modules", kver, "updates/dkms");
      expect(readdirSync(mods).filter((f) => f.startsWith("acpi_call.ko"))).toHaveLength(1);
      expect(readFileSync(join(root, "usr/lib/modules", kver, "modules.dep"), "utf8")).toMatch(/^updates\/dkms\/acpi_call\.ko[^:]*:/m);
      expect(existsSync(join(root, "usr/lib/modules", release()))).toBe(false);
      // New modules change the initramfs inputs key: only the layer's own plan (which knows the
      // upper only added them) lets the base's initramfs serve.
      expect(keyOf(root)).not.toBe(baseKey);
    });
  }, 480_000);
});

describe("particle upgrade of a layered deployment", () => {
  it("stages the new image, re-applies the layered packages onto it, and tracks the image", () => {
    // The base is an OCI image of the trixie tree (one uncompressed layer); `hello` is layered on.
    const layout = join(dir, "layout");
    const baseLayer = { tar: tarDir(baseTree), compression: "none" as const };
    const v1 = writeImage(layout, { tag: "os", layers: [baseLayer] });
    const img = stageJson(`oci:${layout}:os`, sysroot);
    expect(img.oci.sourceDigest).toBe(v1);
    const layered = layer(["install", "hello", "--from", img.id]);
    expect(manifest(layered.id).oci).toMatchObject({ reference: `oci:${layout}:os`, sourceDigest: v1 });
    const none = particle(["upgrade", "--check", "--sysroot", sysroot, "--from", layered.id]);
    expect(none.stderr).toContain(`no update: oci:${layout}:os is still ${v1}`);

    // The tag moves to an image with one more layer.
    const v2 = writeImage(layout, { tag: "os", layers: [baseLayer, { tar: tarBytes([{ path: "usr/share/particle-test/v2", data: "image v2\n" }]), compression: "gzip" }] });
    const up = particle(["upgrade", "--sysroot", sysroot, "--from", layered.id, "--json"]);
    expect(up.code, up.stderr).toBe(0);
    const r = JSON.parse(up.stdout.trim().split("\n").at(-1)!);
    expect(r.layered).toEqual(["hello"]);
    const m = manifest(r.id);
    expect(m).toMatchObject({ layered: ["hello"], oci: { sourceDigest: v2 } });
    expect(m.base!.id).not.toBe(img.id);
    expect(manifest(m.base!.id).oci!.sourceDigest).toBe(v2);
    expectClean();
    withMounted(r.id, (root) => {
      expect(readFileSync(join(root, "usr/share/particle-test/v2"), "utf8")).toBe("image v2\n");
      expect(execFileSync("chroot", [root, "/usr/bin/hello"]).toString()).toBe("Hello, world!\n");
    });
    // Upgraded already: the next check finds the new digest staged.
    const again = particle(["upgrade", "--check", "--sysroot", sysroot, "--from", layered.id]);
    expect(again.stderr).toMatch(new RegExp(`already staged as deployment (${r.id}|${m.base!.id})`));
  }, 600_000);
});
