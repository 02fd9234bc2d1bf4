// The model of `particle doctor --json` (documented in docs/doctor-schema.md). Each finding says
// what was seen and what to do about it; the sections before them are the facts a person asking
// for help would be asked for.
import { z } from "zod";
import { FormatVerdict, KernelCapabilities } from "../kernel/capabilities.ts";
import { LastCheck } from "../auto/last-check.ts";

export const DOCTOR_API_VERSION = "particle-os.org/v1";

export const Severity = z.enum(["ok", "info", "warning", "error"]);
export type Severity = z.infer<typeof Severity>;

export const Finding = z.object({
  /** Stable name of the check, e.g. "entry-without-deployment" (see docs/doctor-schema.md). */
  check: z.string(),
  severity: Severity,
  /** What was seen, in one sentence. */
  message: z.string(),
  /** What to do about it; null when nothing needs doing. */
  action: z.string().nullable(),
});
export type Finding = z.infer<typeof Finding>;

export const Space = z.object({
  /** The directory whose filesystem was measured; null when there is none (no ESP found). */
  path: z.string().nullable(),
  freeBytes: z.number().nullable(),
  totalBytes: z.number().nullable(),
});
export type Space = z.infer<typeof Space>;

export const DoctorReport = z.object({
  apiVersion: z.literal(DOCTOR_API_VERSION),
  kind: z.literal("Doctor"),
  kernel: z.object({
    /** What the running kernel supports, each with its evidence. */
    capabilities: KernelCapabilities,
    /** Which root formats it can boot, newest first. */
    formats: z.array(FormatVerdict),
    /** fs-verity on the store's filesystem (not only in the kernel). */
    storeFsVerity: z.object({ support: z.enum(["yes", "no", "unknown"]), why: z.string() }),
  }),
  store: Space,
  esp: Space,
  /** The booted deployment (particle.deploy=), null when not booted from particle. */
  booted: z.string().nullable(),
  /** The last upgrade check (particle/upgrade-check.json, written by `particle upgrade`); null: never. */
  upgradeCheck: LastCheck.nullable(),
  findings: z.array(Finding),
});
export type DoctorReport = z.infer<typeof DoctorReport>;
