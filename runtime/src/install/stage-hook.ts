// The one call from install into staging. It runs the store's stage() in-process; keeping it behind
// this function means install does not depend on how staging is organised.
import type { RootFormat } from "../manifest.ts";
import type { FormatRequest } from "../kernel/format-choice.ts";

export interface Staged {
  id: string;
  imageDigest: string;
  format: RootFormat;
}

export async function stageInto(sysroot: string, source: string, format: FormatRequest, version: string | undefined, log: (m: string) => void): Promise<Staged> {
  const { stage } = await import("../store/stage.ts");
  const r = await stage({ sysroot, source, format, version, log });
  return { id: r.id, imageDigest: r.imageDigest, format: r.format };
}
