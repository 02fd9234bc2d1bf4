// Host tier for the base image (issue 10 §1): `make image`'s build (image/build.sh) is reproducible,
// the image is bootable by bootc's conventions, a user's Containerfile (examples/) built by the real
// buildah derives from it, and the result stages through containers-storage: and through a real
// registry. The base image is cached under $PARTICLE_CACHE by its inputs; each run builds it once
// more and compares. Needs root and the Debian archive (RUN apt-get; a cold rootfs is mmdebstrap).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { baseImage, buildImage } from "../qemu/lib/base-image.ts";
import { Mounts, particle } from "./lib/particle.ts";
import { startRegistry, type TestRegistry } from "./lib/registry.ts";
import { writeImage } from "./lib/oci-layout.ts";
import { tarBytes } from "./lib/oci-tar.ts";

const REPO = resolve(__dirname, "../..");
const base = mkdtempSync("/var/tmp/particle-image-");
const sysroot = join(base, "sysroot");
const mnt = join(base, "mnt");
const policy = join(base, "policy.json");
const storage = ["--root", join(base, "storage"), "--runroot", join(base, "run"), "--storage-driver", "overlay"];
const csRef = `containers-storage:[overlay@${join(base, "storage")}+${join(base, "run")}]localhost/particle-derived:1`;
const mounts = new Mounts(sysroot);
let registry: TestRegistry;
let cachedLayout = "";
// buildah names an oci: base after its path, which must then be a valid lowercase image name: no
// dot-directory (~/.cache), no capitals (mkdtemp's suffix).
const baseLink = `/var/tmp/particle-image-${process.pid}-base`;
let rebuild: Promise<string>;

const sh = (cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) =>
  execFileSync(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 26 }).toString();

const layoutDigest = (layout: string) => JSON.parse(readFileSync(join(layout, "index.json"), "utf8")).manifests[0].digest as string;
const deployments = () => (existsSync(join(sysroot, "particle/deploy")) ? readdirSync(join(sysroot, "particle/deploy")).sort() : []);

beforeAll(async () => {
  sh("make", ["-C", REPO, "--no-print-directory", "-s", "build"]);
  // The cached rootfs first (a cold mmdebstrap), so that the two builds below share it.
  cachedLayout = await baseImage();
  symlinkSync(cachedLayout, baseLink);
  rebuild = buildImage(join(base, "rebuilt"));
  // Reproducibility is a different concern from the derived image: the rebuild runs meanwhile.
  rebuild.catch(() => {});
  registry = await startRegistry(join(base, "registry"), { quiet: true });
  // Derived images are unsigned here: signatures are registry.test.ts's concern, so this policy says so explicitly.
  writeFileSync(policy, JSON.stringify({ default: [{ type: "reject" }], transports: {
    "containers-storage": { "": [{ type: "insecureAcceptAnything" }] },
    docker: { [registry.host]: [{ type: "insecureAcceptAnything" }] },
    oci: { "": [{ type: "insecureAcceptAnything" }] },
  } }));
}, 900_000);

afterAll(() => {
  for (const m of mounts.live.reverse()) particle(["unmount", m]);
  registry?.stop();
  spawnSyncQuiet("buildah", [...storage, "rm", "--all"]);
  spawnSyncQuiet("umount", ["-R", join(base, "storage", "overlay")]);
  rmSync(base, { recursive: true, force: true });
  rmSync(baseLink, { force: true });
});

function spawnSyncQuiet(cmd: string, args: string[]): void {
  try {
    sh(cmd, args);
  } catch { /* cleanup: best effort */ }
}

describe("the base image", () => {
  it("is labelled bootable (bootc's label and ours), one layer", () => {
    const cfg = JSON.parse(sh("skopeo", ["inspect", "--config", `oci:${cachedLayout}:latest`]));
    expect(cfg.config.Labels).toMatchObject({ "containers.bootc": "1", "org.particle-os.bootable": "1" });
    expect(cfg.rootfs.diff_ids).toHaveLength(1);
  });

  it("is reproducible: a second build from the same rootfs and dist/ has the same manifest digest", async () => {
    const digest = await rebuild;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(digest).toBe(layoutDigest(cachedLayout));
    expect(layoutDigest(join(base, "rebuilt"))).toBe(digest);
  }, 900_000);
});

describe("an image derived with a Containerfile (examples/Containerfile, buildah)", () => {
  it("builds with buildah bud --isolation chroot, RUN apt-get install included", () => {
    sh("buildah", [...storage, "bud", "--isolation", "chroot", "-q", "--build-arg", `BASE=oci:${baseLink}:latest`,
      "-t", "localhost/particle-derived:1", join(REPO, "examples")]);
    const cfg = JSON.parse(sh("buildah", [...storage, "inspect", "--type", "image", "localhost/particle-derived:1"]));
    expect(cfg.OCIv1.config.Labels).toMatchObject({ "containers.bootc": "1", "org.particle-os.bootable": "1" });
  }, 600_000);

  it("stages through containers-storage: with its kernel, and has what the Containerfile added", () => {
    const r = particle(["stage", csRef, "--sysroot", sysroot, "--json", "--signature-policy", policy]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.id).toBe("1");
    const manifest = JSON.parse(readFileSync(join(sysroot, "particle/deploy/1/deployment.json"), "utf8"));
    expect(manifest.kernel).toMatch(/^\d+\.\d+/);
    mounts.mount("1", join(mnt, "1"));
    expect(existsSync(join(mnt, "1/usr/bin/tree"))).toBe(true);
    // The base image's layout (docs/image.md), seen through the derived image.
    for (const p of ["usr/bin/particle", "usr/bin/particle-boot", "usr/bin/skopeo", "usr/bin/dracut", "usr/lib/systemd/systemd",
      "usr/lib/systemd/system/particle-upgrade.timer", "usr/lib/dracut/modules.d/90particle/module-setup.sh", "sysroot", "efi"]) {
      expect(existsSync(join(mnt, "1", p)), p).toBe(true);
    }
    expect(readdirSync(join(mnt, "1/dev"))).toEqual([]);
    expect(readdirSync(join(mnt, "1/usr/lib/modules")).filter((k) => existsSync(join(mnt, "1/usr/lib/modules", k, "vmlinuz")))).toEqual([manifest.kernel]);
    expect(existsSync(join(mnt, "1/usr/lib/modules", manifest.kernel, "vmlinuz"))).toBe(true);
    expect(readFileSync(join(mnt, "1/etc/motd"), "utf8")).toBe("Particle-OS, with tree\n");
    mounts.unmount(join(mnt, "1"));
  }, 600_000);

  it("pushed to a registry with skopeo, stages from docker:// sharing the objects already in the store", () => {
    const ref = `docker://${registry.host}/particle/derived:1`;
    sh("skopeo", ["--insecure-policy", "copy", "-q", csRef, ref], { env: { HOME: registry.home } });
    const r = particle(["stage", ref, "--sysroot", sysroot, "--json", "--signature-policy", policy], { env: { HOME: registry.home } });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.id).toBe("2");
    // Same tree as deployment 1: every file object is already there.
    expect(j.objectsAdded).toBe(0);
    const m1 = JSON.parse(readFileSync(join(sysroot, "particle/deploy/1/deployment.json"), "utf8"));
    const m2 = JSON.parse(readFileSync(join(sysroot, "particle/deploy/2/deployment.json"), "utf8"));
    expect(m2.imageDigest).toBe(m1.imageDigest);
    expect(m2.kernel).toBe(m1.kernel);
  }, 600_000);
});

describe("an image without a kernel", () => {
  it("is refused when it is to get a boot entry, naming the image; the store is unchanged", () => {
    const layout = join(base, "nokernel");
    writeImage(layout, { tag: "t", layers: [{ tar: tarBytes([{ path: "etc/", type: "dir", mode: 0o755 }, { path: "etc/release", data: "x\n" }]), compression: "gzip" }] });
    const esp = join(base, "esp");
    mkdirSync(esp);
    const before = deployments();
    const r = particle(["stage", `oci:${layout}:t`, "--sysroot", sysroot, "--esp", esp, "--signature-policy", policy]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`source oci:${layout}:t: no kernel in it`);
    expect(deployments()).toEqual(before);
    expect(readdirSync(esp)).toEqual([]);
  });
});
