// Image digest checks and sealing, the effectful half of the chain of trust:
// particle.image (pinned in the boot entry) → the kernel's FS_IOC_MEASURE_VERITY of the image
// file → the per-file digests inside the image → overlayfs verity=require checks each object.
//
// Sealing: a store written where fs-verity was unavailable (an offline install from another
// machine) holds files without fs-verity. Before anything is mounted, each such file gets it
// enabled (needs a read-only fd and the filesystem mounted read-write) and the digest the kernel
// then reports is compared with the file's name. Files are named by their fs-verity digest, so
// a file that was altered is caught here, before the kernel starts vouching for it.
import { closeSync, existsSync, openSync, readdirSync, writeFileSync, constants } from "node:fs";
import { join } from "node:path";
import { enableVerity, measureVerity, SysError } from "../system/libc.ts";
import type { RootFormat } from "../manifest.ts";
import type { VerityMode } from "./plan.ts";
import { decideVerity, type VerityDecision } from "./verity-policy.ts";

const EEXIST = 17;
const ENOTTY = 25;
const EROFS = 30;
const EOPNOTSUPP = 95;

/** measureFile's signature; tests hand in a fake (the host has no fs-verity). */
export type Measure = (path: string, seal: boolean) => Measurement;

export type Measurement =
  | { kind: "measured"; digest: string; sealedNow: boolean }
  | { kind: "unavailable"; reason: string };

/** The kernel's fs-verity digest of `path`, enabling fs-verity first when `seal` is set. */
export function measureFile(path: string, seal: boolean): Measurement {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const d = measureVerity(fd, path);
    if (d) return { kind: "measured", digest: d, sealedNow: false };
    if (!seal) return { kind: "unavailable", reason: `${path} has no fs-verity` };
    try {
      enableVerity(fd, path);
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      if (e.errno === EOPNOTSUPP || e.errno === ENOTTY) return { kind: "unavailable", reason: `the filesystem holding ${path} does not support fs-verity` };
      if (e.errno === EROFS) return { kind: "unavailable", reason: `cannot enable fs-verity on ${path}: its filesystem is mounted read-only (boot with rw)` };
      if (e.errno !== EEXIST) throw e; // EEXIST: enabled concurrently; measure it below
    }
    const after = measureVerity(fd, path);
    if (!after) throw new Error(`fs-verity was enabled on ${path} but it cannot be measured`);
    return { kind: "measured", digest: after, sealedNow: true };
  } finally {
    closeSync(fd);
  }
}

/** Userspace digests (userspace-digest.ts). */
export interface Digests {
  userspaceVerityDigest(path: string): string;
  sha256File(path: string): string;
}

// Loaded on first use: every module run at start-up costs particle-boot time (far more under QEMU
// TCG), and it needs this one only when the kernel cannot measure the image. (node:crypto, which
// it uses, is loaded on first call anyway: system/node-crypto.ts.)
// Bun bundles the require() and runs the module when first called; unit tests on Node cannot
// require() TypeScript and pass the module in instead.
const loadDigests = (): Digests => require("./userspace-digest.ts") as Digests;

export interface ImageCheck {
  /** How the digest was established. */
  method: "fs-verity" | "userspace-fs-verity" | "sha256";
  /** The image had no fs-verity and it was enabled now. */
  sealedNow: boolean;
  verity: VerityDecision;
}

export interface ImageCheckInput {
  image: string;
  format: RootFormat;
  /** The digest pinned by the boot entry or the manifest. */
  expected: string;
  /** undefined: require where fs-verity works, otherwise boot without it and warn. */
  asked: VerityMode | undefined;
}

const mismatch = (image: string, how: string, got: string, expected: string) =>
  new Error(`image ${image}: ${how} digest is ${got}, expected ${expected} (particle.image / deployment.json): refusing to mount it`);

/**
 * Checks the image against its pinned digest and decides the overlay verity mode. Throws on a
 * mismatch (whatever the mode) and when `require` cannot be met. Under optional/off without
 * kernel fs-verity, the digest is computed in userspace: the image is then checked once, before
 * mounting, and not on every read — the returned warning says so.
 */
export function checkImage(i: ImageCheckInput, measure: Measure = measureFile, digests: () => Digests = loadDigests): ImageCheck {
  if (!existsSync(i.image)) throw new Error(`image ${i.image} does not exist (wrong particle.image, or the deployment was removed)`);
  if (i.format === "squashfs") {
    // squashfs predates EROFS kernels; its integrity is a plain sha256 checked before mount.
    const got = digests().sha256File(i.image);
    if (got !== i.expected) throw mismatch(i.image, "sha256", got, i.expected);
    const warnings = i.asked === "require" ? [`squashfs image ${i.image}: sha256 checked before mount; files are not verified on read`] : [];
    return { method: "sha256", sealedNow: false, verity: { overlay: "off", mode: i.asked ?? "optional", warnings } };
  }
  const m = measure(i.image, i.asked !== "off");
  if (m.kind === "measured") {
    if (m.digest !== i.expected) throw mismatch(i.image, "fs-verity", m.digest, i.expected);
    return { method: "fs-verity", sealedNow: m.sealedNow, verity: decideVerity(i.asked, true, i.image) };
  }
  if (i.asked === "require") throw new Error(`particle.verity=require: ${m.reason}; refusing to mount an image that cannot be verified (particle.verity=optional accepts that)`);
  const verity = decideVerity(i.asked, false, i.image);
  const got = digests().userspaceVerityDigest(i.image);
  if (got !== i.expected) throw mismatch(i.image, "fs-verity (computed in userspace)", got, i.expected);
  return { method: "userspace-fs-verity", sealedNow: false, verity };
}

export interface SealResult {
  checked: number;
  sealed: number;
  warnings: string[];
}

const HEX2 = /^[0-9a-f]{2}$/;
const HEX62 = /^[0-9a-f]{62}$/;

/**
 * Enables fs-verity on every object lacking it and compares each digest with the object's name.
 * Under `require` any failure is fatal; under `optional` it is a warning (overlay verity=on
 * still refuses to read the affected files). A stamp file records a completed pass so that later
 * boots skip the walk; it is an optimisation only — overlayfs still checks every object on open.
 */
export function sealObjects(objects: string, mode: "require" | "optional", stamp: string, measure: Measure = measureFile): SealResult {
  const res: SealResult = { checked: 0, sealed: 0, warnings: [] };
  if (existsSync(stamp) || !existsSync(objects)) return res;
  const fail = (msg: string) => {
    if (mode === "require") throw new Error(`particle.verity=require: ${msg}`);
    res.warnings.push(msg);
  };
  for (const dir of readdirSync(objects).sort()) {
    if (!HEX2.test(dir)) continue;
    for (const name of readdirSync(join(objects, dir)).sort()) {
      if (!HEX62.test(name)) continue;
      const path = join(objects, dir, name);
      const m = measure(path, true);
      res.checked++;
      if (m.kind === "unavailable") {
        fail(`${m.reason}; objects stay unsealed`);
        return res; // the same holds for every other object on this filesystem
      }
      if (m.sealedNow) res.sealed++;
      if (m.digest !== dir + name) fail(`object ${path} is corrupt: its fs-verity digest is ${m.digest}`);
    }
  }
  if (res.warnings.length === 0) {
    try {
      writeFileSync(stamp, `${new Date().toISOString()} ${res.checked} objects\n`);
    } catch {
      /* read-only sysroot: the walk simply runs again next boot */
    }
  }
  return res;
}

