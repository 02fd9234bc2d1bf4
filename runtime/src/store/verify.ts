// Re-reading the store and recomputing every digest: the check for a store on a filesystem without
// fs-verity, or after copying it around. Reports every problem instead of stopping at the first.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { digestFile, sha256File } from "../verity/file.ts";
import { listDeployments, readDeployment, readObjectList } from "./deployments.ts";
import { imagePath, objectPath, type StoreLayout } from "./layout.ts";

export interface VerifyProblem {
  what: string;
  problem: string;
}

export interface VerifyReport {
  deployments: string[];
  objectsChecked: number;
  imagesChecked: number;
  problems: VerifyProblem[];
}

export function verifyStore(l: StoreLayout, id?: string): VerifyReport {
  const problems: VerifyProblem[] = [];
  const manifests = id === undefined ? listDeployments(l) : [readDeployment(l, id)];
  let imagesChecked = 0;
  const objects = new Set<string>();
  for (const m of manifests) {
    const img = imagePath(l, m.imageDigest, m.format);
    if (!existsSync(img)) {
      problems.push({ what: `deployment ${m.id}`, problem: `image missing: ${img}` });
    } else {
      imagesChecked++;
      const got = m.format === "squashfs" ? sha256File(img) : digestFile(img);
      if (got !== m.imageDigest) problems.push({ what: img, problem: `digest mismatch: content has ${got}` });
    }
    for (const d of readObjectList(l, m.id)) objects.add(d);
  }
  // With no id, every object in the store is checked, referenced or not.
  if (id === undefined && existsSync(l.objects)) {
    for (const fan of readdirSync(l.objects)) {
      for (const rest of readdirSync(join(l.objects, fan))) objects.add(fan + rest);
    }
  }
  let objectsChecked = 0;
  for (const d of [...objects].sort()) {
    const p = objectPath(l, d);
    if (!/^[0-9a-f]{64}$/.test(d)) {
      problems.push({ what: p, problem: "not an object name (stray file in objects/)" });
      continue;
    }
    if (!existsSync(p)) {
      problems.push({ what: p, problem: "object missing" });
      continue;
    }
    objectsChecked++;
    let got: string;
    try {
      got = digestFile(p);
    } catch (e) {
      problems.push({ what: p, problem: `unreadable: ${(e as Error).message}` });
      continue;
    }
    if (got !== d) problems.push({ what: p, problem: `digest mismatch: content has ${got}` });
  }
  return { deployments: manifests.map((m) => m.id), objectsChecked, imagesChecked, problems };
}
