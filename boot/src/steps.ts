// The steps of particle-boot, each one effect with its own error context. main.ts only orders
// them. Nothing here spawns a program: mounts, moves and ioctls are syscalls (runtime/src/system,
// runtime/src/mounts).
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseManifest, type Manifest } from "../../runtime/src/manifest.ts";
import {
  executePlan,
  measureFile,
  mountContaining,
  parseMountinfo,
  persistentWritable,
  planMoveIntoPlace,
  planRoot,
  planWritable,
  planDpkgDatabase,
  SEALED_STAMP,
  unmountTree,
  type OverlayVerity,
  type Writable,
} from "../../runtime/src/mounts/index.ts";
import { DPKG_DB, VAR_DPKG } from "../../runtime/src/tree/dpkg-db.ts";
import { deployDir, imagePath, storeLayout } from "../../runtime/src/store/layout.ts";
import { compareIds } from "../../runtime/src/store/deployments.ts";
import { writeFileAtomic } from "../../runtime/src/system/atomic.ts";
import { mount, MS_BIND, MS_MOVE, MS_PRIVATE, MS_RDONLY, MS_REMOUNT } from "../../runtime/src/system/libc.ts";
import type { BootArgs } from "./cmdline.ts";
import { BOOTED_MARKER, type BootedMarker } from "./marker.ts";
import { parseOverlayrootConf, resolveOverlayroot, type Overlayroot } from "./overlayroot.ts";

const mountinfo = () => parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));

export function existingDir(path: string, what: string): string {
  try {
    return realpathSync(path);
  } catch {
    throw new Error(`${what} ${path} does not exist`);
  }
}

export function loadDeployment(sysroot: string, id: string): Manifest {
  const path = join(deployDir(storeLayout(sysroot), id), "deployment.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new Error(`particle.deploy=${id}: no deployment ${path}`);
  }
  const m = parseManifest(text, path);
  if (m.id !== id) throw new Error(`particle.deploy=${id}: ${path} describes deployment ${m.id}`);
  return m;
}

/**
 * The deployment of image `digest`, for a sealed UKI's command line, which carries only the digest
 * (the UKI is built before the image is staged anywhere, so no deployment id exists yet). The
 * digest still decides what boots: the image is measured against it before anything is mounted.
 * Several deployments of one image (staged twice) differ only in their /etc upper: the newest wins,
 * as it is the one staged last.
 */
export function findDeploymentByImage(sysroot: string, digest: string): Manifest {
  const l = storeLayout(sysroot);
  const ids = existsSync(l.deploy) ? readdirSync(l.deploy).filter((d) => !d.startsWith(".")) : [];
  const found = ids
    .filter((id) => existsSync(join(deployDir(l, id), "deployment.json")))
    .map((id) => loadDeployment(sysroot, id))
    .filter((m) => m.imageDigest === digest)
    .sort((a, b) => compareIds(a.id, b.id));
  const m = found.pop();
  if (!m) throw new Error(`particle.image=${digest}: no deployment of this image under ${l.deploy}`);
  return m;
}

/**
 * Whether this boot may have to enable fs-verity (sealing after an offline install): the image
 * is not measurable yet, or a composefs store was never completely sealed.
 */
export function sealingMayWrite(sysroot: string, m: Manifest, args: BootArgs): boolean {
  if (args.verity === "off" || m.format === "squashfs") return false;
  const image = imagePath(storeLayout(sysroot), args.image, m.format);
  if (existsSync(image) && measureFile(image, false).kind === "unavailable") return true;
  return m.format === "composefs" && !existsSync(join(deployDir(storeLayout(sysroot), m.id), SEALED_STAMP));
}

/** Makes the mount holding `sysroot` read-write; returns how to put it back, or undefined if it was rw. */
function remountRw(sysroot: string): (() => void) | undefined {
  const mnt = mountContaining(mountinfo(), sysroot);
  if (!mnt) return undefined;
  const superRo = mnt.superOptions.split(",").includes("ro");
  const mountRo = mnt.options.split(",").includes("ro");
  if (!superRo && !mountRo) return undefined;
  // A read-only superblock needs a real remount; a read-only bind only its mount flag.
  const bind = superRo ? 0 : MS_BIND;
  mount(null, mnt.mountPoint, null, MS_REMOUNT | bind, null);
  return () => mount(null, mnt.mountPoint, null, MS_REMOUNT | bind | MS_RDONLY, null);
}

/**
 * Runs `f` with the sysroot writable. FS_IOC_ENABLE_VERITY needs the filesystem mounted
 * read-write, and the initramfs usually mounts the root read-only (`ro` on the command line);
 * the mount is put back as it was afterwards, whatever happens.
 */
export function withWritableSysroot<T>(sysroot: string, f: () => T): T {
  const restore = remountRw(sysroot);
  try {
    return f();
  } finally {
    restore?.();
  }
}

/**
 * The persistent layout writes to the physical root (/etc upper, /var), and overlayfs refuses an
 * upper directory on a read-only filesystem. After switch-root nothing would fix it either:
 * systemd-remount-fs remounts `/`, which is then the deployment, not the physical root. So a
 * root mounted `ro` by the initramfs is made read-write here, as `rw` on the command line would.
 */
export function ensureWritableSysroot(sysroot: string): void {
  remountRw(sysroot);
}

/**
 * A private tmpfs for building the new root aside: MS_MOVE refuses mounts whose parent is
 * shared (systemd makes / shared), and a tmpfs keeps the half-built root off the real /run.
 */
export function makeWorkspace(runDir: string): string {
  const ws = join(runDir, "particle-boot");
  mkdirSync(ws, { recursive: true });
  mount("particle-boot", ws, "tmpfs", 0, "mode=0700");
  mount(null, ws, null, MS_PRIVATE, null);
  return ws;
}

/** Removes the workspace and anything still mounted in it (after a failure: everything). */
export function dropWorkspace(ws: string): void {
  unmountTree(ws, { lazy: true });
  rmdirSync(ws);
}

export function mountReadOnlyRoot(ws: string, sysroot: string, m: Manifest, image: string, verity: OverlayVerity): string {
  const root = join(ws, "lower");
  executePlan([{ op: "mkdir", path: root }, ...planRoot({ format: m.format, image, objects: storeLayout(sysroot).objects, target: root, helperDir: ws, verity })]);
  return root;
}

const isWhiteout = (path: string) => {
  const st = lstatSync(path, { throwIfNoEntry: false });
  return st !== undefined && st.isCharacterDevice() && st.rdev === 0;
};

/** overlayroot from the command line, else the deployment's /etc/overlayroot.conf (local edit first). */
export function chooseOverlayroot(args: BootArgs, root: string, sysroot: string, id: string): Overlayroot {
  if (args.overlayroot) return args.overlayroot;
  const upper = join(deployDir(storeLayout(sysroot), id), "etc", "upper", "overlayroot.conf");
  const image = join(root, "etc", "overlayroot.conf");
  let path: string | undefined;
  if (isWhiteout(upper)) path = undefined; // deleted locally
  else if (existsSync(upper)) path = upper;
  else if (existsSync(image)) path = image;
  const value = path ? parseOverlayrootConf(readFileSync(path, "utf8")) : undefined;
  return resolveOverlayroot(undefined, value, "/etc/overlayroot.conf");
}

export function writableFor(o: Overlayroot, sysroot: string, id: string, etc: BootArgs["etc"] = undefined): Writable {
  if (o.mode === "tmpfs") return { kind: "tmpfs" };
  if (o.mode === "device") return { kind: "device", device: o.dev, fsTypes: o.fsTypes };
  const w = persistentWritable(sysroot, id);
  return etc === "transient" ? { ...w, etc: "transient" } : w;
}

/** Ubuntu's default when overlayroot=device gives no timeout=. */
export const DEVICE_TIMEOUT_S = 180;
const POLL_MS = 100;

/**
 * Waits for a block device node to appear (udev may still be creating it, as Ubuntu's
 * overlayroot also allows for with timeout=). Polls: no inotify without spawning or more FFI.
 */
export function waitForDevice(dev: string, seconds: number, what = "overlayroot=device"): void {
  const deadline = Date.now() + seconds * 1000;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(dev)) {
    if (Date.now() >= deadline) throw new Error(`${what}: ${dev} did not appear within ${seconds} s`);
    Atomics.wait(nap, 0, 0, POLL_MS);
  }
}

/** Lays the writable parts over the read-only root; returns where the finished root is. */
export function mountWritable(ws: string, root: string, w: Writable): string {
  if (w.kind === "persistent") mkdirSync(w.var, { recursive: true });
  const overlayroot = w.kind === "tmpfs" || w.kind === "device";
  const target = overlayroot ? join(ws, "root") : root;
  executePlan([...(overlayroot ? [{ op: "mkdir" as const, path: target }] : []), ...planWritable({ root, target, helperDir: ws, writable: w })]);
  return target;
}

/**
 * Binds the deployment's dpkg database over the shared /var/lib/dpkg (mounts/plan.ts
 * planDpkgDatabase). Returns a warning instead of failing the boot: a tree staged before the
 * database moved into /usr has none, and a persistent /var/lib/dpkg that is not a directory is the
 * administrator's and is left alone.
 */
export function mountDpkgDatabase(root: string, w: Writable): string | undefined {
  if (w.kind !== "persistent" || !lstatSync(join(root, DPKG_DB), { throwIfNoEntry: false })?.isDirectory()) return undefined;
  const st = lstatSync(join(w.var, "lib/dpkg"), { throwIfNoEntry: false });
  if (st && !st.isDirectory()) return `/${VAR_DPKG} in the persistent /var is not a directory: the deployment's /${DPKG_DB} is not mounted there, dpkg and apt will not see its packages`;
  executePlan(planDpkgDatabase(root));
  return undefined;
}

export function moveIntoPlace(sysroot: string, target: string, newRoot: string): void {
  const entries = mountinfo();
  if (target === sysroot && !entries.some((e) => e.mountPoint === sysroot)) {
    throw new Error(`--sysroot ${sysroot} is not a mount point; it must be one when it is also the target`);
  }
  const parent = mountContaining(entries, dirname(sysroot));
  if (!parent) throw new Error(`no mount holds ${dirname(sysroot)}`);
  try {
    executePlan(planMoveIntoPlace({ sysroot, target, newRoot, sysrootParentMount: parent.mountPoint }));
  } catch (e) {
    // If the physical root already went under the new root, bring it back before the caller
    // tears the work area down: the emergency shell should find it at the sysroot again.
    const inner = join(newRoot, "sysroot");
    const now = mountinfo();
    if (target === sysroot && now.some((m) => m.mountPoint === inner) && !now.some((m) => m.mountPoint === sysroot)) {
      try {
        mount(inner, sysroot, null, MS_MOVE, null);
      } catch {
        /* nothing more to try; the original error says what went wrong */
      }
    }
    throw e;
  }
}

export function writeBootedMarker(runDir: string, marker: BootedMarker): string {
  const path = join(runDir, BOOTED_MARKER);
  writeFileAtomic(path, JSON.stringify(marker, null, 2) + "\n");
  return path;
}

