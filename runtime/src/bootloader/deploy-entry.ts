// Making one deployment bootable on the ESP: kernel and initramfs first (by digest, skipped when
// already there), then the entry that names them, whose rename makes it the default (it gets the
// highest generation). A power cut before that rename leaves unreferenced files that cleanup
// removes, and the previous default still boots.
import type { Manifest } from "../manifest.ts";
import { renderDeploymentEntry } from "../bls/particle-entry.ts";
import { nextGeneration } from "../bls/order.ts";
import { checkSpace, freeBytes } from "../deployments/space.ts";
import { bytesToInstall, installBootFile, sha256OfFile } from "./esp.ts";
import { particleEntries, readEntries, removeEntryFile, writeEntryFile } from "./entries.ts";
import { syncGrub, usesGrub } from "./grub.ts";
import { checkpoint } from "../system/die-at.ts";

export interface DeploymentEntryInput {
  esp: string;
  manifest: Manifest;
  rootUuid: string;
  kernel: string;
  initrd: string;
  extraArgs?: readonly string[];
  /** Free bytes on the ESP; default statfs of `esp` (install assembles the ESP in a directory). */
  freeBytes?: () => number;
}

export function writeDeploymentEntry(i: DeploymentEntryInput): { file: string; linux: string; initrd: string } {
  const files = [
    { path: i.kernel, digest: sha256OfFile(i.kernel), name: "vmlinuz" as const },
    { path: i.initrd, digest: sha256OfFile(i.initrd), name: "initrd.img" as const },
  ];
  const err = checkSpace([{ what: `ESP ${i.esp} (kernel and initramfs of deployment ${i.manifest.id})`, needed: bytesToInstall(i.esp, files), free: (i.freeBytes ?? (() => freeBytes(i.esp)))() }]);
  if (err) throw err;
  const [linux, initrd] = files.map((f) => installBootFile(i.esp, f.path, f.name, f.digest)) as [string, string];
  checkpoint("entry:boot-files-written");
  const ours = particleEntries(readEntries(i.esp));
  const previous = ours.filter((e) => e.deployId === i.manifest.id);
  const { file, text } = renderDeploymentEntry({
    manifest: i.manifest, rootUuid: i.rootUuid, linux, initrd,
    generation: nextGeneration(ours.map((e) => e.version)), extraArgs: i.extraArgs,
    // GRUB counts tries in its grubenv (grub.ts), not in file names that only systemd-boot renames.
    tries: usesGrub(i.esp) ? 0 : undefined,
  });
  writeEntryFile(i.esp, file, text);
  checkpoint("entry:written");
  for (const p of previous) if (p.name.file !== file) removeEntryFile(i.esp, p.name.file);
  checkpoint("entry:previous-removed");
  syncGrub(i.esp, { start: i.manifest.id });
  return { file, linux, initrd };
}
