// Reading everything status needs from a sysroot and an ESP (both directories, so tests and the
// host can point them anywhere).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseManifest, type Manifest } from "../manifest.ts";
import { deployDir, storeLayout } from "../store/layout.ts";
import { readEntries } from "../bootloader/entries.ts";
import { LOADER_CONF } from "../bootloader/systemd-boot.ts";
import { parseLoaderConf } from "../bls/loader-conf.ts";
import { readLastCheck, type LastCheck } from "../auto/last-check.ts";
import { buildStatus, type EtcCarryOver, type Host } from "./status.ts";
import { readCarryOver } from "./etc-carry.ts";
import { SEALED_MARKER, UKI_DIR } from "../seal/plan.ts";

export const MANIFEST_FILE = "deployment.json";

/** Every deployment with a manifest; a directory without one is an unfinished stage, not a deployment. */
export function readManifests(sysroot: string): Manifest[] {
  const l = storeLayout(sysroot);
  if (!existsSync(l.deploy)) return [];
  const out: Manifest[] = [];
  for (const id of readdirSync(l.deploy)) {
    const p = join(deployDir(l, id), MANIFEST_FILE);
    if (!id.startsWith(".") && existsSync(p)) out.push(parseManifest(readFileSync(p, "utf8"), p));
  }
  return out;
}

export interface Where {
  sysroot: string;
  esp?: string;
  bootedId?: string;
}

export function readStatus(w: Where): Host {
  const manifests = readManifests(w.sysroot);
  const entries = w.esp ? readEntries(w.esp) : [];
  const confPath = w.esp ? join(w.esp, LOADER_CONF) : undefined;
  const conf = confPath && existsSync(confPath) ? parseLoaderConf(readFileSync(confPath, "utf8")) : {};
  const etc = new Map<string, EtcCarryOver>();
  for (const m of manifests) {
    const r = readCarryOver(w.sysroot, m.id);
    if (r) etc.set(m.id, r);
  }
  let upgradeCheck: LastCheck | null = null;
  try {
    upgradeCheck = readLastCheck(w.sysroot);
  } catch (e) {
    // A damaged record must not stop status (or cleanup, which reads it too): say so and go on.
    process.stderr.write(`particle: warning: ${(e as Error).message}\n`);
  }
  return buildStatus({ manifests, entries, loaderDefault: conf.default, bootedId: w.bootedId, etc, esp: w.esp, upgradeCheck,
    sealed: w.esp ? existsSync(join(w.esp, SEALED_MARKER)) : false,
    ukis: w.esp && existsSync(join(w.esp, UKI_DIR)) ? readdirSync(join(w.esp, UKI_DIR)) : [] });
}
