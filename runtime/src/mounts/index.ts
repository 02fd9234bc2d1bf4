// Mounting a deployment, shared by `particle mount` and particle-boot:
//   checkImage (digest + verity decision) → sealObjects (composefs) → plan → execute.
// particle-boot uses the parts separately because it reads /etc/overlayroot.conf from the
// mounted read-only root before it chooses the writable layout.
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Manifest } from "../manifest.ts";
import { deployDir, imagePath, storeLayout } from "../store/layout.ts";
import { umount, MNT_DETACH, SysError } from "../system/libc.ts";
import { executePlan } from "./execute.ts";
import { mountsUnder, parseMountinfo } from "./mountinfo.ts";
import { planDeploymentMount, type OverlayVerity, type VerityMode, type Writable } from "./plan.ts";
import { checkImage, sealObjects, type ImageCheck, type SealResult } from "./verity.ts";

export { planDeploymentMount, planDpkgDatabase, planRoot, planWritable, planMoveIntoPlace, composefsOverlayOptions, VerityMode, OverlayVerity, writableSchema } from "./plan.ts";
export type { Step, Writable } from "./plan.ts";
export { executePlan, describeStep } from "./execute.ts";
export { checkImage, sealObjects, measureFile, type Digests, type Measure } from "./verity.ts";
export { decideVerity } from "./verity-policy.ts";
export { parseMountinfo, mountsUnder, mountContaining, type MountEntry } from "./mountinfo.ts";

/** File written into deploy/<id>/ once every object was sealed and matched its name. */
export const SEALED_STAMP = "sealed";

export interface MountDeploymentOptions {
  sysroot: string;
  manifest: Manifest;
  /** An existing, empty directory. */
  target: string;
  /** undefined: require where the store's filesystem supports fs-verity, else off with a warning. */
  verity: VerityMode | undefined;
  /** Default `none`: the read-only root only. See persistentWritable(). */
  writable?: Writable;
  /** The pinned digest (particle.image); defaults to the manifest's. Must agree with it. */
  expectedDigest?: string;
  /** Where short-lived helper mount points go; default a fresh directory under os.tmpdir(). */
  helperDir?: string;
}

export interface MountDeploymentResult {
  target: string;
  id: string;
  format: Manifest["format"];
  imageDigest: string;
  /** The verity mode in force and the overlay option used (`off` for erofs/squashfs roots). */
  verity: { mode: VerityMode; overlay: OverlayVerity };
  imageCheck: ImageCheck["method"];
  sealed?: SealResult;
  /** Things the caller must print: verity degraded, objects unsealed, … */
  warnings: string[];
  overlayOptions: string[];
  loops: string[];
}

/** The writable layout of a booted deployment: its own /etc upper, the shared /var. */
export function persistentWritable(sysroot: string, id: string): Extract<Writable, { kind: "persistent" }> {
  const l = storeLayout(sysroot);
  const d = deployDir(l, id);
  return { kind: "persistent", etcUpper: join(d, "etc", "upper"), etcWork: join(d, "etc", "work"), var: l.var };
}

/** Steps 1–2 of mounting: check the image's digest, decide verity, seal the objects. */
export function verifyDeployment(o: Pick<MountDeploymentOptions, "sysroot" | "manifest" | "verity" | "expectedDigest">): {
  image: string;
  check: ImageCheck;
  sealed?: SealResult;
  warnings: string[];
} {
  const m = o.manifest;
  const expected = o.expectedDigest ?? m.imageDigest;
  if (expected !== m.imageDigest) {
    throw new Error(`particle.image=${expected} does not match deployment ${m.id}, whose image is ${m.imageDigest}`);
  }
  const l = storeLayout(o.sysroot);
  const image = imagePath(l, expected, m.format);
  const check = checkImage({ image, format: m.format, expected, asked: o.verity });
  const warnings = [...check.verity.warnings];
  let sealed: SealResult | undefined;
  if (m.format === "composefs" && check.method === "fs-verity" && check.verity.mode !== "off") {
    sealed = sealObjects(l.objects, check.verity.mode, join(deployDir(l, m.id), SEALED_STAMP));
    warnings.push(...sealed.warnings);
  }
  return { image, check, sealed, warnings };
}

/** Verifies and mounts a deployment at `target`. Throws with the failing step named. */
export function mountDeployment(o: MountDeploymentOptions): MountDeploymentResult {
  const m = o.manifest;
  const v = verifyDeployment(o);
  const writable = o.writable ?? { kind: "none" };
  if (writable.kind === "persistent") mkdirSync(writable.var, { recursive: true });
  const helperDir = o.helperDir ?? mkdtempSync(join(tmpdir(), "particle-mount-"));
  try {
    const steps = planDeploymentMount({
      format: m.format,
      image: v.image,
      objects: storeLayout(o.sysroot).objects,
      target: realpathSync(o.target),
      helperDir,
      verity: m.format === "composefs" ? v.check.verity.overlay : "off",
      writable,
    });
    const r = executePlan(steps);
    return {
      target: o.target,
      id: m.id,
      format: m.format,
      imageDigest: m.imageDigest,
      verity: { mode: v.check.verity.mode, overlay: m.format === "composefs" ? v.check.verity.overlay : "off" },
      imageCheck: v.check.method,
      sealed: v.sealed,
      warnings: v.warnings,
      overlayOptions: r.overlayOptions,
      loops: r.loops,
    };
  } finally {
    if (!o.helperDir) rmdirSync(helperDir);
  }
}

const EBUSY = 16;
const MAX_UNMOUNTS = 10_000;

/**
 * Unmounts everything at or below `target`, deepest first, re-reading /proc/self/mountinfo after
 * each unmount (propagation can add or remove mounts). A mount can be busy only because of a
 * mount above it: a booted root's file-backed EROFS keeps the image open through <root>/sysroot.
 * So busy mounts are skipped and retried after the others; when a whole round makes no
 * progress, `lazy` detaches what is left, otherwise the EBUSY is thrown. Returns the mount
 * points unmounted, in order.
 */
export function unmountTree(target: string, opts: { lazy?: boolean } = {}): string[] {
  const dir = realpathSync(target);
  const done: string[] = [];
  for (let n = 0; n < MAX_UNMOUNTS; n++) {
    const todo = mountsUnder(parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8")), dir);
    if (todo.length === 0) return done;
    let busy: SysError | undefined;
    let progressed = false;
    for (const m of todo) {
      try {
        umount(m.mountPoint);
        done.push(m.mountPoint);
        progressed = true;
        break;
      } catch (e) {
        if (!(e instanceof SysError) || e.errno !== EBUSY) throw new Error(`unmounting ${m.mountPoint}: ${(e as Error).message}`);
        busy ??= e;
      }
    }
    if (progressed) continue;
    if (!opts.lazy) throw new Error(`unmounting under ${dir}: ${busy!.message}`);
    umount(todo[0]!.mountPoint, MNT_DETACH);
    done.push(todo[0]!.mountPoint);
  }
  throw new Error(`unmounting ${dir}: gave up after ${MAX_UNMOUNTS} unmounts`);
}
