// Kernel release strings ("6.1.0-28-amd64", "6.12.48+deb13-amd64", "5.15.0-91-generic"): only the
// leading major.minor[.patch] says which upstream features the kernel has; the rest is the vendor's.
import { z } from "zod";

export const KernelRelease = z.object({
  /** The release as `uname -r` prints it (the directory name under /usr/lib/modules). */
  text: z.string(),
  major: z.number().int().nonnegative(),
  minor: z.number().int().nonnegative(),
  patch: z.number().int().nonnegative(),
});
export type KernelRelease = z.infer<typeof KernelRelease>;

export function parseKernelRelease(text: string): KernelRelease {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) throw new Error(`kernel release ${JSON.stringify(text)}: expected it to start with MAJOR.MINOR (like 6.1.0-28-amd64)`);
  return { text, major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

/** Whether `r` is upstream `major.minor` or newer. */
export function atLeast(r: Pick<KernelRelease, "major" | "minor">, major: number, minor: number): boolean {
  return r.major > major || (r.major === major && r.minor >= minor);
}
