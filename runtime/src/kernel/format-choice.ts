// The root format of a new deployment, chosen for the kernel that will boot it: the deployment's
// own (the one in its tree), not the one running `particle stage`. A format that was asked for and
// cannot boot there is refused before anything is written, naming the kernel and the format.
import { z } from "zod";
import { RootFormat } from "../manifest.ts";
import { FORMAT_PREFERENCE, formatVerdicts, kernelCapabilities, type KernelFacts } from "./capabilities.ts";

export const FormatRequest = z.union([RootFormat, z.literal("auto")]);
export type FormatRequest = z.infer<typeof FormatRequest>;

/** The format staged when the tree carries no kernel: it boots with whatever kernel the entry names. */
export const FORMAT_WITHOUT_KERNEL: RootFormat = "composefs";

export type FormatChoice =
  | { ok: true; format: RootFormat; why: string }
  | { ok: false; message: string };

/**
 * `kernel`: the facts about the tree's kernel, or undefined when it has none. `allowed`: the formats
 * the source can be staged as at all (an image source cannot become squashfs).
 */
export function chooseFormat(request: FormatRequest, kernel: KernelFacts | undefined, allowed: readonly RootFormat[] = FORMAT_PREFERENCE): FormatChoice {
  if (!kernel) {
    const format = request === "auto" ? FORMAT_WITHOUT_KERNEL : request;
    return { ok: true, format, why: request === "auto" ? `the tree has no kernel: ${format}, the default` : `asked for ${format} (the tree has no kernel to check it against)` };
  }
  const verdicts = formatVerdicts(kernelCapabilities(kernel));
  const bootable = verdicts.filter((v) => v.boots).map((v) => v.format);
  if (request !== "auto") {
    const v = verdicts.find((x) => x.format === request)!;
    if (v.boots) return { ok: true, format: request, why: `asked for ${request}; kernel ${kernel.release} boots it (${v.why})` };
    const alt = bootable.filter((f) => allowed.includes(f));
    return {
      ok: false,
      message: `--format ${request}: the deployment's kernel ${kernel.release} cannot boot a ${request} root (${v.why}); ` +
        (alt.length ? `formats it can boot: ${alt.join(", ")} (or --format auto)` : "it can boot none of particle's formats") + "; nothing was staged",
    };
  }
  const pick = verdicts.find((v) => v.boots && allowed.includes(v.format));
  if (!pick) {
    return { ok: false, message: `kernel ${kernel.release} of the deployment can boot none of ${allowed.join(", ")}: ${verdicts.map((v) => `${v.format}: ${v.why}`).join("; ")}; nothing was staged` };
  }
  const skipped = verdicts.slice(0, verdicts.indexOf(pick)).map((v) => `${v.format}: ${v.boots ? "not possible for this source" : v.why}`);
  return { ok: true, format: pick.format, why: `kernel ${kernel.release}: ${pick.format} (${pick.why})${skipped.length ? `; not ${skipped.join("; ")}` : ""}` };
}
