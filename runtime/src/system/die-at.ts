// Fault injection for the crash campaign (test/crash): PARTICLE_DIE_AT=<step>[#<n>] makes the
// process SIGKILL itself at the n-th time (default the first) it passes checkpoint <step>, the
// way a power cut or an OOM kill would stop it there. PARTICLE_DIE_TRACE=<file> appends every
// checkpoint passed to that file, so the campaign learns which steps a command goes through.
// With neither variable set, a checkpoint is one comparison with undefined.
import { appendFileSync } from "node:fs";

const dieAt = process.env.PARTICLE_DIE_AT || undefined;
const trace = process.env.PARTICLE_DIE_TRACE || undefined;
const [dieStep, dieNth] = dieAt ? [dieAt.replace(/#\d+$/, ""), Number(/#(\d+)$/.exec(dieAt)?.[1] ?? 1)] : [];
const seen = new Map<string, number>();

/** A moment worth dying at: after a temp file is written, after a rename, between two writes. */
export function checkpoint(step: string): void {
  if (dieAt === undefined && trace === undefined) return;
  const n = (seen.get(step) ?? 0) + 1;
  seen.set(step, n);
  if (trace) appendFileSync(trace, `${step}#${n}\n`);
  if (step === dieStep && n === dieNth) process.kill(process.pid, "SIGKILL");
}
