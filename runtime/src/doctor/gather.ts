// The thin system layer of `particle doctor`: reads the running kernel, the store, the ESP and the
// upgrade-check record into DoctorFacts. Read-only: no lock is taken and nothing is written.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { particleEntries, readEntries } from "../bootloader/entries.ts";
import { ESP_DIR, listBootDirs } from "../bootloader/esp.ts";
import { readCarryOver } from "../deployments/etc-carry.ts";
import { readManifests, readStatus, type Where } from "../deployments/read.ts";
import { runningKernelFacts } from "../kernel/probe.ts";
import type { KernelFacts, Support } from "../kernel/capabilities.ts";
import { readObjectList } from "../store/deployments.ts";
import { imagePath, objectPath, storeLayout } from "../store/layout.ts";
import { diskFree, verityState } from "../system/libc.ts";
import { lastCheckPath, parseLastCheck } from "../auto/last-check.ts";
import { digestFile, sha256File } from "../verity/file.ts";
import type { DoctorFacts, QuickVerify } from "./facts.ts";
import type { Space } from "./schema.ts";

/** An unsealed image larger than this is not re-read by the quick verify (a full erofs image is the whole tree). */
export const QUICK_VERIFY_MAX_BYTES = 64 * 1024 * 1024;

export function gatherDoctorFacts(w: Where, kernel: KernelFacts = runningKernelFacts()): DoctorFacts {
  const l = storeLayout(w.sysroot);
  const manifests = existsSync(l.deploy) ? readManifests(w.sysroot) : [];
  const entries = w.esp ? particleEntries(readEntries(w.esp)) : [];
  const status = readStatus(w);
  return {
    kernel,
    storeFsVerity: storeVerity(l.images, kernel),
    store: space(l.root),
    esp: space(w.esp ?? null),
    espLargestBootPair: w.esp ? largestBootPair(w.esp) : 0,
    deployments: manifests.map((m) => {
      const c = readCarryOver(w.sysroot, m.id);
      return { id: m.id, format: m.format, created: m.created, ...(m.base ? { baseId: m.base.id } : {}), ...(c ? { carryOver: { from: c.from, phase: c.phase } } : {}) };
    }),
    entries: entries.map((e) => ({ file: e.name.file, deployId: e.deployId!, triesLeft: e.name.triesLeft, triesDone: e.name.triesDone })),
    bootedId: w.bootedId,
    defaultId: status.spec.defaultDeployment ?? undefined,
    verify: quickVerify(w.sysroot),
    upgradeCheck: readUpgradeCheck(lastCheckPath(w.sysroot)),
  };
}

function space(path: string | null): Space {
  if (!path || !existsSync(path)) return { path, freeBytes: null, totalBytes: null };
  const d = diskFree(path);
  return { path, freeBytes: d.free, totalBytes: d.total };
}

/** Kernels and initramfs images sit in directories of their own digests: the largest of each, added. */
function largestBootPair(esp: string): number {
  const max: Record<string, number> = {};
  for (const d of listBootDirs(esp)) {
    const dir = join(esp, ESP_DIR, d);
    for (const f of readdirSync(dir)) max[f] = Math.max(max[f] ?? 0, statSync(join(dir, f)).size);
  }
  return (max["vmlinuz"] ?? 0) + (max["initrd.img"] ?? 0);
}

/** fs-verity on the store's filesystem, from what an image there answers (the first boot seals them). */
function storeVerity(images: string, kernel: KernelFacts): { support: Support; why: string } {
  const files = existsSync(images) ? readdirSync(images).filter((f) => !f.startsWith(".")) : [];
  let unsealed = false;
  for (const f of files) {
    const st = withFd(join(images, f), (fd) => verityState(fd, join(images, f)));
    if (st === "unsupported") return { support: "no", why: `${join(images, f)}: the filesystem does not support fs-verity` };
    if (st === "unsealed") unsealed = true;
    else return { support: "yes", why: `${join(images, f)} is sealed` };
  }
  if (kernel.config && kernel.config.CONFIG_FS_VERITY !== "y") return { support: "no", why: "CONFIG_FS_VERITY is not set in the running kernel" };
  return { support: "unknown", why: unsealed ? "no image is sealed yet" : "no image in the store to ask" };
}

function withFd<T>(path: string, fn: (fd: number) => T): T {
  const fd = openSync(path, "r");
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** Every deployment's image is there with its digest, every object it names exists: seconds, not minutes. */
export function quickVerify(sysroot: string): QuickVerify {
  const l = storeLayout(sysroot);
  const out: QuickVerify = { imagesChecked: 0, imagesSkipped: 0, objectsChecked: 0, problems: [] };
  if (!existsSync(l.deploy)) return out;
  let manifests;
  try {
    manifests = readManifests(sysroot);
  } catch (e) {
    out.problems.push({ what: l.deploy, problem: (e as Error).message });
    return out;
  }
  const objects = new Set<string>();
  for (const m of manifests) {
    const img = imagePath(l, m.imageDigest, m.format);
    if (!existsSync(img)) {
      out.problems.push({ what: `deployment ${m.id}`, problem: `image missing: ${img}` });
      continue;
    }
    const st = m.format === "squashfs" ? "unsupported" : withFd(img, (fd) => verityState(fd, img));
    let got: string | undefined;
    if (typeof st === "object") got = st.sealed;
    else if (statSync(img).size <= QUICK_VERIFY_MAX_BYTES) got = m.format === "squashfs" ? sha256File(img) : digestFile(img);
    if (got === undefined) out.imagesSkipped++;
    else {
      out.imagesChecked++;
      if (got !== m.imageDigest) out.problems.push({ what: `deployment ${m.id}`, problem: `image ${img} has digest ${got}, the manifest says ${m.imageDigest}` });
    }
    for (const d of readObjectList(l, m.id)) objects.add(d);
  }
  for (const d of [...objects].sort()) {
    if (existsSync(objectPath(l, d))) out.objectsChecked++;
    else out.problems.push({ what: objectPath(l, d), problem: "object missing (a deployment's image points at it)" });
  }
  return out;
}

function readUpgradeCheck(path: string): DoctorFacts["upgradeCheck"] {
  if (!existsSync(path)) return null;
  try {
    return parseLastCheck(readFileSync(path, "utf8"), path);
  } catch (e) {
    return { unreadable: (e as Error).message };
  }
}
