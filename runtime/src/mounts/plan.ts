// The mount planner: pure functions from a deployment's paths to the list of mount steps that
// build its root. No effects here, so every layout (composefs, full erofs, squashfs, /etc+/var,
// overlayroot, the final moves) is unit-tested on Node; execute.ts performs the steps.
import { join } from "node:path";
// zod/mini: the same schemas and types as zod, at a fraction of the start-up cost (particle-boot's
// start-up is benchmarked against a bare Bun program); unions are built lazily for the same reason.
import * as z from "zod/mini";
import { lazySchema } from "./lazy-schema.ts";
import { RootFormat } from "../manifest.ts";
import { overlayPath } from "./overlay-options.ts";
import { DPKG_DB, VAR_DPKG } from "../tree/dpkg-db.ts";

/** What the user asks for (particle.verity=, `particle mount --verity`). */
export const VerityMode = z.enum(["require", "optional", "off"]);
export type VerityMode = z.infer<typeof VerityMode>;

/** The overlayfs `verity=` option actually used: `on` checks digests that are present. */
export const OverlayVerity = z.enum(["require", "on", "off"]);
export type OverlayVerity = z.infer<typeof OverlayVerity>;

/** The writable parts laid over the read-only deployment root. */
export const writableSchema = lazySchema(() => z.discriminatedUnion("kind", [
  /** Read-only root only (`particle mount`). */
  z.object({ kind: z.literal("none") }),
  /**
   * /etc = overlay with the deployment's persistent upper; /var = bind of the shared var. With
   * `etc: "transient"` (particle.etc=transient, sealed strict mode) the /etc upper is a fresh tmpfs
   * instead, so nothing written to the disk's /etc upper reaches the booted system.
   */
  z.object({ kind: z.literal("persistent"), etcUpper: z.string(), etcWork: z.string(), var: z.string(), etc: z.optional(z.literal("transient")) }),
  /** overlayroot=tmpfs: one tmpfs upper over the whole root; nothing persists. */
  z.object({ kind: z.literal("tmpfs") }),
  /** overlayroot=device:dev=…: the upper lives on a block device (Ubuntu's overlay/ and overlay-workdir/). */
  z.object({ kind: z.literal("device"), device: z.string(), fsTypes: z.array(z.string()).check(z.minLength(1)) }),
]));
export type Writable = z.infer<ReturnType<typeof writableSchema>>;

export type Step =
  /** mkdir -p. */
  | { op: "mkdir"; path: string }
  /** rmdir of a helper directory (must be empty). */
  | { op: "rmdir"; path: string }
  /**
   * Mount a filesystem image read-only. `loop: "fallback"` tries the file as source first (EROFS
   * backed by a file, kernel ≥ 6.12) and sets up a loop device when the kernel refuses it;
   * `"always"` goes straight to a loop device (squashfs only mounts block devices).
   */
  | { op: "image"; image: string; target: string; fsType: "erofs" | "squashfs"; loop: "fallback" | "always" }
  /** Mount overlayfs; `options` are alternatives tried in order while the kernel answers EINVAL. */
  | { op: "overlay"; target: string; readOnly: boolean; options: string[] }
  | { op: "tmpfs"; target: string; options: string }
  /** Mount a block device read-write, trying each filesystem type in turn. */
  | { op: "device"; device: string; target: string; fsTypes: string[] }
  | { op: "bind"; source: string; target: string; recursive: boolean }
  /**
   * Lazily unmount a helper mount. Overlayfs holds private clones of its layers, so the helper
   * mount is no longer needed once the overlay is up and nothing is left visible to clean up.
   */
  | { op: "detach"; target: string }
  /** Make a mount private: MS_MOVE refuses to move a mount whose parent is shared. */
  | { op: "private"; target: string }
  | { op: "move"; source: string; target: string };

export interface RootPlanInput {
  format: RootFormat;
  /** The image file: particle/images/<digest>.erofs or .squashfs. */
  image: string;
  /** particle/objects (composefs data-only lower). */
  objects: string;
  /** Where the read-only root is mounted. */
  target: string;
  /** An existing directory for short-lived helper mount points. */
  helperDir: string;
  verity: OverlayVerity;
}

/** Options of the composefs overlay: newest syntax first, then the 6.5/6.6 `::` form. */
export function composefsOverlayOptions(meta: string, objects: string, verity: OverlayVerity): string[] {
  // metacopy+redirect_dir: file metadata in the EROFS image, content found through
  // trusted.overlay.redirect in the data-only lower. `verity=` is left out when off, because
  // kernels before 6.6 do not know the option at all.
  const tail = verity === "off" ? "" : `,verity=${verity}`;
  const base = "metacopy=on,redirect_dir=on";
  const m = overlayPath(meta, "composefs metadata mount");
  const o = overlayPath(objects, "object store");
  return [`${base},lowerdir+=${m},datadir+=${o}${tail}`, `${base},lowerdir=${m}::${o}${tail}`];
}

export function planRoot(i: RootPlanInput): Step[] {
  if (i.format === "squashfs") return [{ op: "image", image: i.image, target: i.target, fsType: "squashfs", loop: "always" }];
  if (i.format === "erofs") return [{ op: "image", image: i.image, target: i.target, fsType: "erofs", loop: "fallback" }];
  const meta = join(i.helperDir, "meta");
  return [
    { op: "mkdir", path: meta },
    { op: "image", image: i.image, target: meta, fsType: "erofs", loop: "fallback" },
    { op: "overlay", target: i.target, readOnly: true, options: composefsOverlayOptions(meta, i.objects, i.verity) },
    { op: "detach", target: meta },
    { op: "rmdir", path: meta },
  ];
}

export interface WritablePlanInput {
  /** Where the read-only root is mounted. */
  root: string;
  /** Where the finished root goes. Must equal `root` for none/persistent (they mount into it). */
  target: string;
  helperDir: string;
  writable: Writable;
}

export function planWritable(i: WritablePlanInput): Step[] {
  const w = i.writable;
  if (w.kind === "none" || w.kind === "persistent") {
    if (i.root !== i.target) throw new Error(`planWritable: ${w.kind} mounts into the root itself (root ${i.root} ≠ target ${i.target})`);
    if (w.kind === "none") return [];
    const etc = join(i.root, "etc");
    const rw = join(i.helperDir, "etc-rw");
    const transient = w.etc === "transient";
    const upper = transient ? join(rw, "upper") : w.etcUpper;
    const work = transient ? join(rw, "work") : w.etcWork;
    return [
      ...(transient ? [{ op: "mkdir", path: rw } as Step, { op: "tmpfs", target: rw, options: "mode=0755" } as Step] : []),
      { op: "mkdir", path: upper },
      { op: "mkdir", path: work },
      {
        op: "overlay",
        target: etc,
        readOnly: false,
        options: [`lowerdir=${overlayPath(etc, "/etc")},upperdir=${overlayPath(upper, "/etc upper")},workdir=${overlayPath(work, "/etc work")}`],
      },
      // The overlay holds its tmpfs upper; the helper path goes with the workspace.
      ...(transient ? [{ op: "detach", target: rw } as Step, { op: "rmdir", path: rw } as Step] : []),
      { op: "bind", source: w.var, target: join(i.root, "var"), recursive: false },
    ];
  }
  if (i.root === i.target) throw new Error(`planWritable: overlayroot needs the read-only root apart from the target (${i.root})`);
  const rw = join(i.helperDir, "rw");
  const mountUpper: Step =
    w.kind === "tmpfs"
      ? { op: "tmpfs", target: rw, options: "mode=0755" }
      : { op: "device", device: w.device, target: rw, fsTypes: w.fsTypes };
  // Ubuntu's overlayroot names: upper in overlay/, work in overlay-workdir/, so an existing
  // overlayroot device keeps working.
  const upper = join(rw, w.kind === "tmpfs" ? "upper" : "overlay");
  const work = join(rw, w.kind === "tmpfs" ? "work" : "overlay-workdir");
  return [
    { op: "mkdir", path: rw },
    mountUpper,
    { op: "mkdir", path: upper },
    { op: "mkdir", path: work },
    {
      op: "overlay",
      target: i.target,
      readOnly: false,
      options: [`lowerdir=${overlayPath(i.root, "read-only root")},upperdir=${overlayPath(upper, "overlayroot upper")},workdir=${overlayPath(work, "overlayroot work")}`],
    },
    { op: "detach", target: i.root },
    { op: "detach", target: rw },
    { op: "rmdir", path: rw },
  ];
}

/**
 * The booted deployment's own dpkg database over the shared /var/lib/dpkg (tree/dpkg-db.ts): a
 * bind of <root>/usr/lib/sysimage/dpkg, read-only like the rest of /usr, so `dpkg -l` lists what
 * this deployment has and a rollback lists the older set. Nothing in the persistent /var changes
 * but an empty mount point. After the /var bind (planWritable); the caller checks that the tree has
 * the database and that the persistent /var/lib/dpkg is a directory or absent (a bind follows symlinks).
 */
export function planDpkgDatabase(root: string): Step[] {
  const target = join(root, VAR_DPKG);
  return [
    { op: "mkdir", path: target },
    { op: "bind", source: join(root, DPKG_DB), target, recursive: false },
  ];
}

export interface DeploymentPlanInput extends Omit<RootPlanInput, "target"> {
  target: string;
  writable: Writable;
}

/** The whole deployment at `target`: read-only root, then its writable parts. */
export function planDeploymentMount(i: DeploymentPlanInput): Step[] {
  const overlayroot = i.writable.kind === "tmpfs" || i.writable.kind === "device";
  const root = overlayroot ? join(i.helperDir, "lower") : i.target;
  return [
    ...(overlayroot ? [{ op: "mkdir", path: root } as Step] : []),
    ...planRoot({ ...i, target: root }),
    ...planWritable({ root, target: i.target, helperDir: i.helperDir, writable: i.writable }),
    ...(overlayroot ? [{ op: "rmdir", path: root } as Step] : []),
  ];
}

export interface MovePlanInput {
  /** The physical root (a mount point when it is also the target). */
  sysroot: string;
  /** Where the new root must end up. */
  target: string;
  /** The finished new root, built aside under a private mount. */
  newRoot: string;
  /** Mount point of the mount holding `sysroot` (from mountinfo). */
  sysrootParentMount: string;
}

/**
 * Put the new root in place and keep the physical root reachable at <newroot>/sysroot.
 * When target is the sysroot (the initramfs case), the order matters: first move the physical root
 * under the new root — which frees the target path — then move the new root (carrying the
 * physical root with it) onto the target. The other order would bury the physical root under
 * the new root with no path left to reach it.
 */
export function planMoveIntoPlace(i: MovePlanInput): Step[] {
  const inner = join(i.newRoot, "sysroot");
  if (i.target === i.sysroot) {
    return [
      { op: "private", target: i.sysrootParentMount },
      { op: "move", source: i.sysroot, target: inner },
      { op: "move", source: i.newRoot, target: i.target },
    ];
  }
  // A separate target (tests, `particle mount`-like use): the physical root stays where it is and
  // is bound into the new root instead; recursive so /boot or an ESP under it come along.
  return [
    { op: "bind", source: i.sysroot, target: inner, recursive: true },
    { op: "move", source: i.newRoot, target: i.target },
  ];
}
