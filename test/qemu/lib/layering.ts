// Package layering on a booted guest (issue 14), shared inputs: the trixie tree as an OCI image (v1)
// installed to a disk on the host, so the booted deployment tracks an image reference; the same
// layout with the tag moved to v2 (one more layer) on an ext4 image the guest mounts at the path the
// reference names; and the local apt repository (apt-repo.ts) with what the layered packages need.
// All cached under ~/.cache/particle-os, keyed by what they are built from.
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { tarBytes } from "../../host/lib/oci-tar.ts";
import { tarDir, writeImage } from "../../host/lib/oci-layout.ts";
import { aptRepo } from "./apt-repo.ts";
import { cached, fileHash, hashOf } from "./cache.ts";
import { PARTICLE } from "./cycle.ts";
import { makeExt4 } from "./disk.ts";
import { guestTree, initramfs, sh, type GuestTree } from "./guest.ts";
import { KERNEL_ARGS } from "./qemu.ts";

/** Bump when a recipe below changes. */
const LAYERING_VERSION = "1";
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
/** A DKMS package from trixie (small, builds in seconds), one plain package, and skopeo, which the
 *  guest has not and `particle upgrade` needs: layering it is how a booted machine gets it. */
export const LAYERED = ["acpi-call-dkms", "hello", "skopeo"];
export const DKMS_MODULE = "acpi_call";

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

/** v1: the tree as one gzip layer; v2: the same layer and one holding V2_MARKER. */
async function layouts(g: GuestTree): Promise<{ dir: string; v1: string; v2: string }> {
  const dir = await cached(`oci-layering-${hashOf(LAYERING_VERSION, g.key)}`, async (out) => {
    const base = { tar: tarDir(g.dir), compression: "gzip" as const };
    const v1 = writeImage(join(out, "v1/layout"), { tag: "os", layers: [base] });
    mkdirSync(join(out, "v2"));
    sh("cp", ["-a", join(out, "v1/layout"), join(out, "v2/layout")]);
    const v2 = writeImage(join(out, "v2/layout"), { tag: "os", layers: [base, { tar: tarBytes([{ path: V2_MARKER, data: V2_MARKER_TEXT }]), compression: "gzip" }] });
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
  const repo = await aptRepo(g, [...LAYERED, `linux-headers-${g.kver}`]);
  const l = await layouts(g);
  const installed = await installedDisk(g, initrd, l.dir, log);
  const v2 = await cached(`oci-layering-v2-${hashOf(LAYERING_VERSION, l.dir, l.v2)}.img`, async (out) => makeExt4(out, join(l.dir, "v2"), 64));
  return { g, installed, v2, v1Digest: l.v1, v2Digest: l.v2, repo };
}
