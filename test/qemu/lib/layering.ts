// Package layering on a booted guest (issue 14), shared inputs: the trixie tree as an OCI image (v1)
// (with dkms, the kernel headers and skopeo: PREINSTALLED) installed to a disk on the host, so the booted deployment tracks an image reference; the same
// layout with the tag moved to v2 (one more layer) on an ext4 image the guest mounts at the path the
// reference names; and the local apt repository (apt-repo.ts) with what the layered packages need.
// All cached under ~/.cache/particle-os, keyed by what they are built from.
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tarBytes } from "../../host/lib/oci-tar.ts";
import { tarDir, writeImage } from "../../host/lib/oci-layout.ts";
import { aptRepo } from "./apt-repo.ts";
import { cached, fileHash, hashOf } from "./cache.ts";
import { PARTICLE } from "./cycle.ts";
import { makeExt4 } from "./disk.ts";
import { guestTree, initramfs, sh, withChrootMounts, type GuestTree } from "./guest.ts";
import { KERNEL_ARGS } from "./qemu.ts";

/** Bump when a recipe below changes. */
const LAYERING_VERSION = "2";
const DISK_SIZE = "6G";
/**
 * The path of the image reference, the same on the host (a symlink, while `particle install` runs)
 * and in the guest (where the v2 disk is mounted): `particle upgrade` asks the reference recorded
 * at install time.
 */
export const OCI_DIR = "/run/particle-layering-oci";
export const OCI_REF = `oci:${OCI_DIR}/layout:os`;
export const V2_MARKER = "usr/share/particle-test/layering-v2";
export const V2_MARKER_TEXT = "image v2 of the layering test\n";
/** A DKMS package from trixie (small, builds in seconds) and one plain package. */
export const LAYERED = ["acpi-call-dkms", "hello"];
export const DKMS_MODULE = "acpi_call";
/**
 * Installed into the v1 image on the host, from the same local repository: under TCG, unpacking
 * and configuring dkms's toolchain (gcc, make, binutils), the kernel headers and skopeo (which
 * `particle upgrade` from an OCI layout needs) took most of the guest's ~12 minutes of apt.
 * What layering must prove in the guest stays there: real apt from the guestfwd repository and a
 * real DKMS build for the deployment's kernel. Pulling linux-headers when a DKMS package needs
 * them is covered on the host (test/host/layer.test.ts).
 */
export const PREINSTALLED = (kver: string) => ["dkms", `linux-headers-${kver}`, "skopeo"];

export interface LayeringInputs {
  g: GuestTree;
  /** Pristine installed disk (copy before booting). */
  installed: string;
  /** ext4 image holding <OCI_DIR>/layout with the tag at v2. */
  v2: string;
  v1Digest: string;
  v2Digest: string;
  repo: string;
}

/** The guest tree plus PREINSTALLED, installed with apt in a chroot from the local repository. */
function layeringTree(g: GuestTree, repo: string): Promise<string> {
  return treeWithPackages(g, repo, PREINSTALLED(g.kver), `tree-layering-${hashOf(LAYERING_VERSION, g.key, repo)}`);
}

/** The guest tree plus `packages`, installed with apt in a chroot from the local repository `repo`. */
export async function treeWithPackages(g: GuestTree, repo: string, packages: readonly string[], cacheName: string, customize: (tree: string) => void = () => {}): Promise<string> {
  return cached(cacheName, async (out) => {
    sh("cp", ["-a", "--reflink=auto", g.dir, out]);
    const run = join(out, "run");
    const policy = join(out, "usr/sbin/policy-rc.d");
    withChrootMounts(out, () => {
      // Everything apt needs besides the tree (sources, lists, downloads) lives on a tmpfs at /run.
      sh("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", run]);
      try {
        mkdirSync(join(run, "repo"));
        sh("mount", ["--bind", "-o", "ro", repo, join(run, "repo")]);
        writeFileSync(join(run, "repo.list"), "deb [trusted=yes] file:/run/repo ./\n");
        writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
        const apt = ["apt-get", "-q", "-o", "Dir::Etc::sourcelist=/run/repo.list", "-o", "Dir::Etc::sourceparts=-",
          "-o", "Dir::State::lists=/run/lists", "-o", "Dir::Cache=/run/cache", "-o", "APT::Sandbox::User=root"];
        mkdirSync(join(run, "lists/partial"), { recursive: true });
        mkdirSync(join(run, "cache/archives/partial"), { recursive: true });
        const env = { DEBIAN_FRONTEND: "noninteractive", PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };
        sh("chroot", [out, ...apt, "update"], { env });
        sh("chroot", [out, ...apt, "-y", "--no-install-recommends", "install", ...packages], { env });
      } finally {
        rmSync(policy, { force: true });
        spawnSync("umount", ["-R", run]);
      }
    });
    customize(out);
  });
}

/** v1: the tree as one gzip layer; v2: the same layer and one holding V2_MARKER. */
function layouts(g: GuestTree, tree: string): Promise<{ dir: string; v1: string; v2: string }> {
  return markerLayouts(tree, `oci-layering-${hashOf(LAYERING_VERSION, g.key, tree)}`, V2_MARKER, V2_MARKER_TEXT);
}

/**
 * Two OCI layouts (tag `os`) under `<dir>/v1/layout` and `<dir>/v2/layout`: v1 is `tree` as one gzip
 * layer, v2 the same layer plus one holding `marker`. Their manifest digests in `<dir>/vN/digest`.
 */
export async function markerLayouts(tree: string, cacheName: string, marker: string, text: string): Promise<{ dir: string; v1: string; v2: string }> {
  const dir = await cached(cacheName, async (out) => {
    const base = { tar: tarDir(tree), compression: "gzip" as const };
    const v1 = writeImage(join(out, "v1/layout"), { tag: "os", layers: [base] });
    mkdirSync(join(out, "v2"));
    sh("cp", ["-a", join(out, "v1/layout"), join(out, "v2/layout")]);
    const v2 = writeImage(join(out, "v2/layout"), { tag: "os", layers: [base, { tar: tarBytes([{ path: marker, data: text }]), compression: "gzip" }] });
    sh("sh", ["-c", `echo ${v1} >"$1/v1/digest"; echo ${v2} >"$1/v2/digest"`, "sh", out]);
  });
  const read = (v: string) => sh("cat", [join(dir, v, "digest")]).trim();
  return { dir, v1: read("v1"), v2: read("v2") };
}

/** `particle install` from the v1 image, reached through OCI_DIR (a symlink for the duration). */
async function installedDisk(g: GuestTree, initrd: string, layoutDir: string, log: (m: string) => void): Promise<string> {
  const key = hashOf(LAYERING_VERSION, g.key, initrd, await fileHash(PARTICLE), DISK_SIZE, layoutDir);
  return cached(`disk-layering-${key}.img`, async (tmp) => {
    if (existsSync(OCI_DIR) || lstatSync(OCI_DIR, { throwIfNoEntry: false })) throw new Error(`${OCI_DIR} exists on the host; is another layering test running?`);
    mkdirSync(join(OCI_DIR, ".."), { recursive: true });
    symlinkSync(join(layoutDir, "v1"), OCI_DIR);
    try {
      const args = ["install", "--to-disk", tmp, "--source", OCI_REF, "--size", DISK_SIZE, "--initramfs", initrd];
      for (const a of KERNEL_ARGS.split(" ")) args.push("--karg", a);
      const t = Date.now();
      const r = spawnSync(PARTICLE, args, { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`particle install failed (${r.status}):\n${r.stdout}${r.stderr}`);
      log(`particle ${args.join(" ")}: ${((Date.now() - t) / 1000).toFixed(0)} s`);
    } finally {
      rmSync(OCI_DIR, { force: true });
    }
  });
}

export async function prepareLayering(log: (m: string) => void = () => {}): Promise<LayeringInputs> {
  const g = await guestTree();
  const initrd = await initramfs(g);
  const repo = await aptRepo(g, [...LAYERED, ...PREINSTALLED(g.kver)]);
  const l = await layouts(g, await layeringTree(g, repo));
  const installed = await installedDisk(g, initrd, l.dir, log);
  const v2 = await cached(`oci-layering-v2-${hashOf(LAYERING_VERSION, l.dir, l.v2)}.img`, async (out) => makeExt4(out, join(l.dir, "v2"), 64));
  return { g, installed, v2, v1Digest: l.v1, v2Digest: l.v2, repo };
}
