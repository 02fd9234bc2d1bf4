// Making a sealed deployment the default: the renames of seal/uki-order.ts, each one atomic on
// the ESP and followed by an fsync of the directory, in the order the planner gives.
import { readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { fsyncDir } from "../system/atomic.ts";
import { checkpoint } from "../system/die-at.ts";
import { UKI_DIR } from "../seal/plan.ts";
import { orderUkis, pinsImage, planUkiPromote, type Rename } from "../seal/uki-order.ts";

export function promoteUki(esp: string, imageDigest: string): { file: string; renames: Rename[] } {
  const dir = join(esp, UKI_DIR);
  const renames = planUkiPromote(readdirSync(dir), imageDigest);
  for (const r of renames) {
    renameSync(join(dir, r.from), join(dir, r.to));
    fsyncDir(dir);
    checkpoint("promote-uki:renamed");
  }
  const file = orderUkis(readdirSync(dir)).find((u) => pinsImage(u, imageDigest))!.name.file;
  return { file, renames };
}
