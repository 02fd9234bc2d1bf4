// Runs the mounts module under Bun (its syscalls need bun:ffi) for test/host/mount*.test.ts,
// which run on Node. Usage: bun mount-driver.ts '<json request>'; prints a JSON result.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseManifest } from "../../runtime/src/manifest.ts";
import { executePlan, mountDeployment, persistentWritable, unmountTree, type Step, type Writable } from "../../runtime/src/mounts/index.ts";

type Request =
  | { op: "mount"; sysroot: string; id: string; target: string; verity?: "require" | "optional" | "off"; writable?: Writable | "persistent"; expectedDigest?: string }
  | { op: "unmount"; target: string; lazy?: boolean }
  | { op: "plan"; steps: Step[] };

const req = JSON.parse(process.argv[2]!) as Request;
try {
  let out: unknown;
  if (req.op === "mount") {
    const manifest = parseManifest(readFileSync(join(req.sysroot, "particle/deploy", req.id, "deployment.json"), "utf8"), req.id);
    const writable = req.writable === "persistent" ? persistentWritable(req.sysroot, req.id) : req.writable;
    out = mountDeployment({ sysroot: req.sysroot, manifest, target: req.target, verity: req.verity, writable, expectedDigest: req.expectedDigest });
  } else if (req.op === "unmount") {
    out = unmountTree(req.target, { lazy: req.lazy });
  } else {
    out = executePlan(req.steps);
  }
  process.stdout.write(JSON.stringify({ ok: out }));
} catch (e) {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }));
  process.exitCode = 1;
}
