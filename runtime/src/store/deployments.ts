// Listing and reading deployments. A directory under deploy/ without a valid deployment.json is not
// a deployment (it cannot exist after a clean stage, since the directory is renamed into place
// complete) and is reported, not used.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseManifest, type Manifest } from "../manifest.ts";
import { deployDir, type StoreLayout } from "./layout.ts";

export const MANIFEST_FILE = "deployment.json";
/**
 * The objects a composefs deployment's image references, as sorted raw 32-byte digests. Kept beside
 * the manifest so cleanup and verify need not parse the EROFS image; it is derived data (the image
 * is the authority), so a damaged list only makes verify report it.
 */
export const OBJECT_LIST = "objects.bin";

/** `digests` may repeat; they are sorted in place. */
export function encodeObjectList(digests: string[]): Buffer {
  digests.sort();
  // One buffer written in place: a Buffer per digest cost ~100 bytes each at the end of a stage.
  // Repeats are adjacent once sorted: no Set of 60k strings to drop them.
  const out = Buffer.allocUnsafe(digests.length * 32);
  let n = 0;
  for (let i = 0; i < digests.length; i++) if (i === 0 || digests[i] !== digests[i - 1]) out.write(digests[i]!, 32 * n++, 32, "hex");
  return out.subarray(0, 32 * n);
}

export function decodeObjectList(buf: Buffer, where: string): string[] {
  if (buf.length % 32 !== 0) throw new Error(`${where}: truncated object list (${buf.length} bytes)`);
  const out: string[] = [];
  for (let i = 0; i < buf.length; i += 32) out.push(buf.subarray(i, i + 32).toString("hex"));
  return out;
}

export function readObjectList(l: StoreLayout, id: string): string[] {
  const path = join(deployDir(l, id), OBJECT_LIST);
  if (!existsSync(path)) return [];
  return decodeObjectList(readFileSync(path), path);
}

export function readDeployment(l: StoreLayout, id: string): Manifest {
  const path = join(deployDir(l, id), MANIFEST_FILE);
  if (!existsSync(path)) throw new Error(`deployment ${id}: not found in ${l.deploy}`);
  return parseManifest(readFileSync(path, "utf8"), path);
}

export function listDeployments(l: StoreLayout): Manifest[] {
  if (!existsSync(l.deploy)) return [];
  const out: Manifest[] = [];
  for (const id of readdirSync(l.deploy)) {
    if (id.startsWith(".")) continue;
    if (!existsSync(join(l.deploy, id, MANIFEST_FILE))) continue;
    out.push(readDeployment(l, id));
  }
  return out.sort((a, b) => compareIds(a.id, b.id));
}

/** Numeric ids sort numerically; the newest deployment is the last. */
export function compareIds(a: string, b: string): number {
  const na = Number.parseInt(a, 10);
  const nb = Number.parseInt(b, 10);
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Pure: the next id after the existing ones. */
export function nextId(existing: string[]): string {
  let max = 0;
  for (const id of existing) {
    const n = Number.parseInt(id, 10);
    if (Number.isFinite(n) && n > max) max = n;
  }
  return String(max + 1);
}
