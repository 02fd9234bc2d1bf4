// What `particle doctor` reads off the machine (gather.ts), as plain values for the planner.
import type { KernelFacts, Support } from "../kernel/capabilities.ts";
import type { RootFormat } from "../manifest.ts";
import type { LastCheck } from "../auto/last-check.ts";
import type { Space } from "./schema.ts";

export interface DeploymentFacts {
  id: string;
  format: RootFormat;
  created: string;
  /** Set for a deployment made by `particle layer`: the base it stands on (kept without an entry on purpose). */
  baseId?: string;
  /** Where /etc was last carried to this deployment from, and when ("stage" or "finalize"). */
  carryOver?: { from: string; phase: "stage" | "finalize" };
}

export interface EntryFacts {
  file: string;
  /** particle.deploy= of the entry. */
  deployId: string;
  triesLeft?: number;
  triesDone?: number;
}

export interface QuickVerify {
  /** Images whose digest was checked (measured by fs-verity, or recomputed when small). */
  imagesChecked: number;
  /** Images present but too big to re-read quickly and not sealed by fs-verity. */
  imagesSkipped: number;
  /** Objects named by deployments that were checked to exist (not re-read). */
  objectsChecked: number;
  problems: Array<{ what: string; problem: string }>;
}

export interface DoctorFacts {
  kernel: KernelFacts;
  storeFsVerity: { support: Support; why: string };
  store: Space;
  esp: Space;
  /** Bytes of the largest kernel + initrd pair on the ESP (particle/<digest>/): what one more deployment may need. */
  espLargestBootPair: number;
  deployments: DeploymentFacts[];
  /** particle entries on the ESP, in boot order. */
  entries: EntryFacts[];
  bootedId?: string;
  /** The deployment the next boot starts (the default entry's). */
  defaultId?: string;
  verify: QuickVerify;
  /** null: no record; an Error message: the record is unreadable. */
  upgradeCheck: LastCheck | null | { unreadable: string };
}
