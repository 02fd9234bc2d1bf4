// Deployments for the guest, made with the real CLI on the host: `particle stage dir:<tree>` into a
// sysroot directory that then becomes the guest's ext4 root (mkfs.ext4 -O verity -d).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { REPO, sh } from "./guest.ts";

export interface Staged {
  id: string;
  format: string;
  imageDigest: string;
  objectsAdded: number;
  bytesAdded: number;
}

export function stage(tree: string, sysroot: string, extra: string[] = []): Staged {
  mkdirSync(sysroot, { recursive: true });
  const out = sh(join(REPO, "dist/particle"), ["stage", `dir:${tree}`, "--sysroot", sysroot, "--json", ...extra]);
  const last = out.trim().split("\n").pop() ?? "";
  const s = JSON.parse(last) as Staged;
  if (!/^[0-9a-f]{64}$/.test(s.imageDigest) || !s.id) throw new Error(`particle stage printed ${last}`);
  return s;
}

/** Kernel command line booting deployment `s` from the ext4 root on /dev/vda. */
export function deployCmdline(s: Pick<Staged, "id" | "imageDigest">, extra = ""): string {
  return `root=/dev/vda rw particle.deploy=${s.id} particle.image=${s.imageDigest} ${extra}`.trim();
}
