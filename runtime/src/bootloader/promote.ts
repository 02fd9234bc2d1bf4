// Making a deployment the default: its entry is rewritten with a generation above every other, in
// one atomic rename on the ESP. Used by rollback and, through writeDeploymentEntry, by stage.
import { nextGeneration } from "../bls/order.ts";
import { particleEntries, planPromote, readEntries, removeEntryFile, writeEntryFile } from "./entries.ts";
import { syncGrub } from "./grub.ts";
import { checkpoint } from "../system/die-at.ts";

export function promoteDeployment(esp: string, deployId: string): { file: string; generation: number } {
  const all = particleEntries(readEntries(esp));
  const e = all.find((x) => x.deployId === deployId);
  if (!e) throw new Error(`deployment ${deployId} has no boot entry in ${esp}/loader/entries`);
  const generation = nextGeneration(all.map((x) => x.version));
  const p = planPromote(e, generation);
  writeEntryFile(esp, p.file, p.text);
  checkpoint("promote:entry-written");
  if (p.removeOld) removeEntryFile(esp, p.removeOld);
  // GRUB: the menu now starts with this deployment, which booted before: its tries are not counted.
  syncGrub(esp, "stop");
  return { file: p.file, generation };
}
