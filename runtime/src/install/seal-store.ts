// Sealing the installed store while the installer still has it mounted read-write (issue 13).
//
// particle-boot seals a store that has no fs-verity on its first boot: it reads and hashes every
// object, 3.5× a cold read of the store under QEMU (perf-notes §5), before the machine is up.
// Where the installing kernel has fs-verity, that work is done here instead, and the first boot
// finds the image measurable and the deployment stamped, so it only measures. Where it has none
// (this project's CI host), nothing changes: the first boot seals, as before.
import { join } from "node:path";
import type { Manifest } from "../manifest.ts";
import { SEALED_STAMP } from "../mounts/index.ts";
import { measureFile, sealObjects, type Measure } from "../mounts/verity.ts";
import { deployDir, imagePath, storeLayout } from "../store/layout.ts";

export type InstallSeal =
  | { kind: "sealed"; image: boolean; objects: number }
  | { kind: "first-boot"; reason: string };

/**
 * Enables fs-verity on the deployment's image and, for composefs, on every object, checking each
 * digest the kernel reports against the name it was stored under. A mismatch is an error: the
 * store that was just written is not what staging hashed.
 */
export function sealInstalledStore(root: string, m: Manifest, measure: Measure = measureFile): InstallSeal {
  if (m.format === "squashfs") return { kind: "first-boot", reason: "squashfs images are checked by sha256, not fs-verity" };
  const l = storeLayout(root);
  const image = imagePath(l, m.imageDigest, m.format);
  const got = measure(image, true);
  if (got.kind === "unavailable") return { kind: "first-boot", reason: got.reason };
  if (got.digest !== m.imageDigest) throw new Error(`install: image ${image} has fs-verity digest ${got.digest}, but deployment ${m.id} was staged with ${m.imageDigest}`);
  if (m.format !== "composefs") return { kind: "sealed", image: got.sealedNow, objects: 0 };
  // "require": a corrupt object or a filesystem that sealed the image but not an object fails
  // the install here rather than the first boot.
  let r;
  try {
    r = sealObjects(l.objects, "require", join(deployDir(l, m.id), SEALED_STAMP), measure);
  } catch (e) {
    throw new Error(`install: the store just written under ${l.objects} failed its fs-verity check (${(e as Error).message})`);
  }
  return { kind: "sealed", image: got.sealedNow, objects: r.checked };
}
