// The one call from install into staging. It runs the store's stage() in-process; keeping it behind
// this function means install does not depend on how staging is organised.
import type { RootFormat } from "../manifest.ts";
import type { FormatRequest } from "../kernel/format-choice.ts";
import type { Policy } from "../oci/skopeo.ts";
import type { ProgressOut } from "../oci/progress.ts";

export interface Staged {
  id: string;
  imageDigest: string;
  format: RootFormat;
}

export interface StageIntoOptions {
  source: string;
  format: FormatRequest;
  version?: string;
  /** Image sources: the signature policy skopeo applies (default: the system's policy.json). */
  policy?: Policy;
  /** Image sources: the reference the installed system tracks instead of the source's. */
  trackAs?: string;
  /** Image sources: where the fetch progress and the warning of an unverified image go. */
  progressOut?: ProgressOut;
  log: (m: string) => void;
}

export async function stageInto(sysroot: string, o: StageIntoOptions): Promise<Staged> {
  const { stage } = await import("../store/stage.ts");
  const r = await stage({ sysroot, ...o });
  return { id: r.id, imageDigest: r.imageDigest, format: r.format };
}
