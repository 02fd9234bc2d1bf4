// A tree being installed must carry Particle-OS itself: the installed system stages its own updates
// (particle), boots them (particle-boot in its initramfs) and builds that initramfs with its own
// dracut module. Without them the first update would fail, long after install said "done".
import { existsSync } from "node:fs";
import { join } from "node:path";

export const REQUIRED_IN_TREE: ReadonlyArray<{ path: string; why: string }> = [
  { path: "usr/bin/particle", why: "stages updates on the installed system" },
  { path: "usr/bin/particle-boot", why: "mounts the deployment from the initramfs" },
  { path: "usr/lib/dracut/modules.d/90particle", why: "puts particle-boot into the initramfs" },
];

/** The required paths missing under `root` (a tree or a mounted deployment). */
export function missingParticleFiles(root: string, required = REQUIRED_IN_TREE): Array<{ path: string; why: string }> {
  return required.filter((r) => !existsSync(join(root, r.path)));
}

export function treeCheckError(source: string, missing: ReadonlyArray<{ path: string; why: string }>): Error {
  const list = missing.map((m) => `/${m.path} (${m.why})`).join(", ");
  return new Error(`${source} lacks Particle-OS itself: missing ${list}. Install it into the tree first (make install DESTDIR=<tree>)`);
}
