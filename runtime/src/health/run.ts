// The effects of `particle health`: list the health.d directories for the planner, then run the
// planned checks one at a time. Every check runs even after one failed, so the journal names all
// that failed in one boot; the caller turns any failure into a non-zero exit, which fails
// particle-health.service and so keeps boot-complete.target from being reached.
import { lstatSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import type { CheckOutcome, HealthFile, HealthListing, PlannedCheck } from "./plan.ts";

/** A check that hangs must not hold the boot forever: it fails instead (greenboot has the same). */
export const CHECK_TIMEOUT_MS = 300_000;

function describe(path: string): HealthFile {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const l = lstatSync(path);
  if (l.isSymbolicLink() && readlinkSync(path) === "/dev/null") return { name, executable: false, masked: true, regular: false };
  let st;
  try { st = l.isSymbolicLink() ? statSync(path) : l; } catch { return { name, executable: false, masked: false, regular: false }; }
  const regular = st.isFile();
  return { name, regular, executable: regular && (st.mode & 0o111) !== 0, masked: regular && st.size === 0 };
}

/** A missing directory lists as empty: neither directory has to exist. */
export function listHealthDir(dir: string): HealthListing {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e: any) {
    if (e?.code === "ENOENT" || e?.code === "ENOTDIR") return { dir, files: [] };
    throw new Error(`listing health checks in ${dir}: ${e?.message ?? e}`);
  }
  return { dir, files: names.map((n) => describe(join(dir, n))) };
}

/** Runs one check with no input; stdout and stderr are kept together, in order, for the journal. */
export async function runCheck(c: PlannedCheck, timeoutMs = CHECK_TIMEOUT_MS): Promise<CheckOutcome> {
  const r = await execa(c.path, [], { all: true, reject: false, timeout: timeoutMs, stdin: "ignore", stripFinalNewline: true });
  const output = typeof r.all === "string" ? r.all : "";
  let error: string | undefined;
  if (r.timedOut) error = `timed out after ${Math.round(timeoutMs / 1000)} s`;
  else if (r.signal) error = `killed by ${r.signal}`;
  else if (r.failed && r.exitCode === undefined) error = r.shortMessage;
  return { name: c.name, path: c.path, exitCode: r.exitCode ?? null, error, output };
}
