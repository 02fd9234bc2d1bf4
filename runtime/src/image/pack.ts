// A directory tree → a bootable OCI image in an OCI layout, reproducibly: the manifest digest
// depends only on the tree's contents, the labels and the epoch. Built aside and renamed into place,
// so a failed build never leaves a half-written layout where the previous one was.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { scanTree } from "../tree/scan.ts";
import { walk, type Inode } from "../tree/model.ts";
import { parseDpkgList, planChunks, type PackageFiles } from "./chunk-plan.ts";
import { writeJsonBlob, writeLayerBlob, type WrittenLayer } from "./blob-write.ts";
import { layerTar } from "./layer-stream.ts";
import { BOOTABLE_LABEL, BOOTC_LABEL, configJson, indexJson, manifestJson } from "./oci-json.ts";

export interface PackOptions {
  tree: string;
  layout: string;
  tag: string;
  epoch: number;
  labels: Record<string, string>;
  /** Split the tree along dpkg packages into at most this many layers (chunk-plan.ts); default one layer. */
  maxLayers?: number;
}

export interface PackResult {
  manifestDigest: string;
  kernel: string;
  layers: WrittenLayer[];
}

function child(dir: Inode | undefined, name: string): Inode | undefined {
  return dir?.entries?.find((e) => e.name.toString() === name)?.inode;
}

/** The kernel versions with an image at bootc's place, /usr/lib/modules/<kver>/vmlinuz. */
export function bootcKernels(root: Inode): string[] {
  const mods = child(child(child(root, "usr"), "lib"), "modules");
  return (mods?.entries ?? []).filter((e) => child(e.inode, "vmlinuz")?.kind === "file").map((e) => e.name.toString());
}

export async function pack(o: PackOptions): Promise<PackResult> {
  const { root } = scanTree(o.tree);
  const kernels = bootcKernels(root);
  if (kernels.length !== 1) {
    throw new Error(`${o.tree}: a bootable image needs exactly one kernel at /usr/lib/modules/<kver>/vmlinuz, found ${kernels.length ? kernels.join(", ") : "none"}`);
  }
  const work = `${o.layout}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(dirname(o.layout), { recursive: true });
  mkdirSync(work);
  try {
    const layers: WrittenLayer[] = [];
    const createdBy: string[] = [];
    if (o.maxLayers === undefined) {
      layers.push(await writeLayerBlob(work, layerTar(root, o.epoch)));
      createdBy.push("particle image pack");
    } else {
      const plan = planChunks(treeFiles(root), dpkgPackages(o.tree), o.maxLayers);
      const last = plan.layers.length - 1;
      for (const [i, name] of plan.layers.entries()) {
        // Every directory goes in the last layer too, so that empty ones exist somewhere.
        const keep = (p: string, inode: Inode) => (inode.kind === "dir" ? i === last : plan.layerOf.get(p) === i);
        layers.push(await writeLayerBlob(work, layerTar(root, o.epoch, { keep })));
        createdBy.push(`particle image chunk: ${name}`);
      }
    }
    const labels = { ...o.labels, [BOOTC_LABEL]: "1", [BOOTABLE_LABEL]: "1" };
    const config = writeJsonBlob(work, configJson({ epoch: o.epoch, labels, createdBy }, layers));
    const manifest = writeJsonBlob(work, manifestJson(config, layers));
    writeFileSync(join(work, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    writeFileSync(join(work, "index.json"), indexJson(manifest, o.tag));
    if (existsSync(o.layout)) rmSync(o.layout, { recursive: true });
    renameSync(work, o.layout);
    return { manifestDigest: manifest.digest, kernel: kernels[0]!, layers };
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

/** Every non-directory of the tree (relative path, latin1 like layerTar's filter) with its size. */
function treeFiles(root: Inode): Map<string, number> {
  const out = new Map<string, number>();
  for (const [abs, inode] of walk(root)) {
    if (abs.length > 0 && inode.kind !== "dir" && inode.kind !== "sock") out.set(abs.subarray(1).toString("latin1"), inode.size);
  }
  return out;
}

/** The tree's dpkg file lists; a tree without dpkg has none (then everything is unowned). */
function dpkgPackages(tree: string): PackageFiles[] {
  const info = join(tree, "var/lib/dpkg/info");
  if (!existsSync(info)) return [];
  return readdirSync(info).filter((f) => f.endsWith(".list")).sort()
    .map((f) => ({ name: f.slice(0, -".list".length), paths: parseDpkgList(readFileSync(join(info, f), "latin1")) }));
}
