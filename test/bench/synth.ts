// A synthesized tree for the scale benchmark: ten times the file count of the /usr workload, made of
// many small files in deep and wide directories, the shape that stresses the tree model and the
// EROFS writer rather than the disk. Deterministic: the same recipe gives the same names, sizes,
// contents, owners, modes and mtimes on every machine, so its cache key is the recipe alone.
//
// Shape: a root of `top` directories, each a tree of `fanout`-wide directories `depth` levels deep;
// every leaf directory holds files. One leaf in `wideEvery` is wide (`wideFiles` entries: directory
// blocks spill beyond one 4 KiB block); the others hold `files` entries. Sizes follow a fixed cycle
// (0 B to 16 KiB, mostly under 4 KiB, as in /usr/share); every `dupEvery`-th file repeats an earlier
// content, so the store deduplicates some objects as it does on real trees.
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setXattr } from "../../runtime/src/system/libc.ts";
import { benchCacheDir, log, sh } from "./lib.ts";
import { fsverityDigests, MKFS_REF_ARGS, overlayXattrs, walk } from "./workload.ts";

export const SYNTH_RECIPE = {
  version: 1,
  top: 4,
  fanout: 5,
  depth: 5,
  files: 208,
  wideEvery: 50,
  wideFiles: 2400,
  dupEvery: 10,
  sizes: [0, 37, 180, 420, 700, 1100, 1600, 2300, 3100, 4096, 5200, 7000, 9800, 16384],
  symlinkEvery: 50,
};

/** xorshift32: a fixed stream of pseudo-random bytes, the same on every machine. */
function pool(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

/** Writes the tree under `root` (which must not exist); returns the number of regular files. */
export function synthesize(root: string, r = SYNTH_RECIPE): number {
  const bytes = pool(1 << 20, 0x9e3779b9);
  const T = 1_700_000_000;
  let n = 0;
  let leaf = 0;
  const file = (dir: string, k: number) => {
    const size = r.sizes[n % r.sizes.length]!;
    // A duplicate repeats the content of the file dupEvery before it (same size: same cycle slot).
    const id = n % r.dupEvery === r.dupEvery - 1 && n >= r.sizes.length ? n - r.sizes.length : n;
    const off = (id * 4099) % ((1 << 20) - 16384 - 16);
    const data = Buffer.alloc(size);
    if (size > 0) {
      bytes.copy(data, 0, off, off + size);
      data.writeUInt32LE(id, 0);
    }
    const p = join(dir, `f${k.toString(36)}.${["txt", "h", "py", "so", "gz"][n % 5]}`);
    writeFileSync(p, data);
    chmodSync(p, n % 7 === 0 ? 0o755 : 0o644);
    utimesSync(p, T + (n % 1000), T + (n % 1000));
    n++;
    if (n % r.symlinkEvery === 0) symlinkSync(`f${k.toString(36)}`, join(dir, `l${k.toString(36)}`));
  };
  const rec = (dir: string, level: number) => {
    mkdirSync(dir);
    if (level === r.depth) {
      const count = leaf++ % r.wideEvery === 0 ? r.wideFiles : r.files;
      for (let k = 0; k < count; k++) file(dir, k);
    } else {
      for (let c = 0; c < r.fanout; c++) rec(join(dir, `d${level}-${c}`), level + 1);
    }
    utimesSync(dir, T, T);
  };
  mkdirSync(root);
  for (let t = 0; t < r.top; t++) rec(join(root, `top${t}`), 1);
  utimesSync(root, T, T);
  return n;
}

export interface SynthWorkload {
  dir: string;
  tree: string;
  refImage: string;
  manifest: {
    recipe: typeof SYNTH_RECIPE;
    key: string;
    buildSeconds: number;
    counts: { regularFiles: number; regularBytes: number; dirs: number; symlinks: number; distinctDigests: number };
    reference: { mkfsArgs: string[]; imageBytes: number };
  };
}

/**
 * The scale workload, built once under `<bench cache>/synth-<key>/`: tree/ and, as for the /usr
 * workload, ref-tree/ + ref.erofs (empty files carrying only the two overlay xattrs) as the bound of
 * the metadata image.
 */
export async function synthWorkload(): Promise<SynthWorkload> {
  const key = createHash("sha256").update(JSON.stringify(SYNTH_RECIPE)).digest("hex").slice(0, 16);
  const cache = benchCacheDir();
  const dir = join(cache, `synth-${key}`);
  const read = (): SynthWorkload => ({ dir, tree: join(dir, "tree"), refImage: join(dir, "ref.erofs"), manifest: JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) });
  if (existsSync(join(dir, "manifest.json"))) return read();
  for (const n of readdirSync(cache)) if (n.startsWith("synth-") && n !== `synth-${key}`) rmSync(join(cache, n), { recursive: true, force: true });
  const t0 = performance.now();
  const building = `${dir}.building`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { recursive: true });
  const tree = join(building, "tree");
  log(`synthesizing the scale workload in ${building} (once; cached by recipe key ${key})`);
  synthesize(tree);
  const entries = walk(tree);
  const files = entries.filter((e) => e.kind === "file");
  const nonEmpty = files.filter((f) => f.size > 0);
  log(`fs-verity digests of ${nonEmpty.length} files (reference image, expected objects)`);
  const digests = await fsverityDigests(tree, nonEmpty.map((f) => f.rel));
  const refTree = join(building, "ref-tree");
  await sh(["cp", "-a", "--attributes-only", tree, refTree]);
  for (const f of nonEmpty) {
    const { redirect, metacopy } = overlayXattrs(digests.get(f.rel)!);
    const p = Buffer.from(join(refTree, f.rel));
    setXattr(p, Buffer.from("trusted.overlay.metacopy"), metacopy);
    setXattr(p, Buffer.from("trusted.overlay.redirect"), redirect);
  }
  const refImage = join(building, "ref.erofs");
  const mkfsArgs = [...MKFS_REF_ARGS, refImage, refTree];
  await sh(mkfsArgs);
  const manifest: SynthWorkload["manifest"] = {
    recipe: SYNTH_RECIPE,
    key,
    buildSeconds: (performance.now() - t0) / 1000,
    counts: {
      regularFiles: files.length,
      regularBytes: files.reduce((a, f) => a + f.size, 0),
      dirs: entries.filter((e) => e.kind === "dir").length,
      symlinks: entries.filter((e) => e.kind === "symlink").length,
      distinctDigests: new Set(digests.values()).size,
    },
    reference: { mkfsArgs: mkfsArgs.map((a) => a.replace(building, dir)), imageBytes: statSync(refImage).size },
  };
  writeFileSync(join(building, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  renameSync(building, dir);
  log(`scale workload built in ${manifest.buildSeconds.toFixed(0)} s: ${manifest.counts.regularFiles} files`);
  return read();
}
