import { gatherDoctorFacts } from "../doctor/gather.ts";
import { diagnose } from "../doctor/plan.ts";
import { renderDoctor } from "../doctor/render.ts";
import { resolveWhere } from "../deployments/where.ts";

/** A report with an "error" finding exits non-zero, so scripts and support can test for it. */
export class DoctorFoundErrors extends Error {}

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const report = diagnose(gatherDoctorFacts(resolveWhere(opts)));
  process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + "\n" : renderDoctor(report));
  const errors = report.findings.filter((f) => f.severity === "error").length;
  if (errors) throw new DoctorFoundErrors(`doctor: ${errors} finding${errors > 1 ? "s" : ""} need${errors > 1 ? "" : "s"} attention (see above)`);
}
