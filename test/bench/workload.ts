// The store benchmark's workload, built once and cached under
// `${PARTICLE_CACHE:-~/.cache/particle-os}/bench/store-<key>/`, where <key> hashes the recipe below.
//
//   tree/          a copy (cp -a) of a fixed list of /usr directories, laid out as usr/…  (~1.9 GB, ~61k files)
//   tree-changed/  the same tree after "1% of the files changed": a hardlink copy (cp -al) of tree/ in
//                  which every 100th eligible regular file was replaced by a NEW file (new inode) holding
//                  the old bytes plus a short suffix, with the old owner, mode and mtime + 1 s.
//   ref-tree/      the reference for the metadata-image target: same dirs, symlinks, hardlinks, owners,
//                  modes and mtimes (cp -a --attributes-only), every regular file empty and carrying only
//                  trusted.overlay.redirect (66 bytes) and trusted.overlay.metacopy (36 bytes) with the
//                  file's real fs-verity digest; ref.erofs is mkfs.erofs of it.
//   manifest.json  the recipe, counts and expectations (distinct objects, new objects after the change).
//
// Why a hardlink copy with replaced files rather than editing files in place and restoring them:
// the pristine tree never changes, so an interrupted run cannot leave a corrupted cache, and nothing
// has to be restored (ctime cannot be). Unchanged files in tree-changed/ are the very same inodes as in
// tree/ (same dev, ino, size, mtime, ctime), exactly what an incremental stager's devino cache sees when
// a build directory is updated by replacing files (as dpkg and most build tools do). The benchmark
// stages both trees from one path (it renames them onto `src/`), so a cache that also keys by path
// still matches. Side effect: every unchanged file has nlink 2 (one link per tree); the images built
// from the trees must not depend on nlink from outside the tree (neither ostree nor composefs does).
import { createHash } from "node:crypto";
import {
  chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync,
  statSync, unlinkSync, utimesSync, writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setXattr } from "../../runtime/src/system/libc.ts";
import { benchCacheDir, BenchError, log, sh } from "./lib.ts";

/** Bump when the way the workload is built changes, so old caches are not reused. */
const WORKLOAD_VERSION = 1;

/**
 * The /usr directories copied, in order. Chosen by hand (from `du`/`find` on this Debian 12 host,
 * /usr = 5.8 GB, 119k files) to give ~1.9 GB in ~61k regular files with a realistic mix: many small
 * text files (share, include), mid-sized executables (bin, libexec) and a few large libraries (llvm,
 * gcc). /usr/lib/x86_64-linux-gnu was left out because it alone is 1.4 GB in 2.7k files.
 * Missing directories (another host) are skipped and recorded in the manifest.
 */
export const RECIPE = {
  version: WORKLOAD_VERSION,
  source: "/usr",
  dirs: [
    "bin", "sbin", "include", "libexec", "share",
    "lib/gcc", "lib/llvm-14", "lib/python3.11", "lib/postgresql", "lib/git-core", "lib/cni",
    "lib/systemd", "lib/file", "lib/debug",
  ],
  /** 1% of the regular files change between the two stages. */
  changeFraction: 0.01,
  /** Appended to each changed file. */
  changeSuffix: "\n# particle-bench: changed\n",
};

export interface WorkloadManifest {
  recipe: typeof RECIPE;
  key: string;
  builtAt: string;
  buildSeconds: number;
  missingDirs: string[];
  counts: {
    regularFiles: number; // paths (a hardlinked inode counts once per path)
    regularInodes: number;
    regularBytes: number; // sum over inodes
    emptyFiles: number;
    dirs: number;
    symlinks: number;
    other: number;
    distinctDigests: number; // distinct contents of non-empty files: the objects a store needs
  };
  changed: {
    files: number;
    paths: string[]; // relative to the tree root
    bytesAfter: number;
    /** distinct new contents not already in tree/: what a re-stage must add to the object store */
    expectedNewObjects: number;
  };
  reference: {
    mkfsArgs: string[];
    imageBytes: number;
    filesWithOverlayXattrs: number;
  };
}

export interface Workload {
  dir: string;
  tree: string;
  treeChanged: string;
  refTree: string;
  refImage: string;
  /** The single path both trees are staged from (see header). */
  src: string;
  manifest: WorkloadManifest;
}

export const recipeKey = (): string =>
  createHash("sha256").update(JSON.stringify(RECIPE)).digest("hex").slice(0, 16);

export interface Entry { rel: string; kind: "file" | "dir" | "symlink" | "other"; size: number; ino: number; }

/** Walks a tree in sorted (byte) order; paths relative to root. */
export function walk(root: string): Entry[] {
  const out: Entry[] = [];
  const rec = (rel: string) => {
    const names = readdirSync(join(root, rel)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(root, r));
      const kind = st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other";
      out.push({ rel: r, kind, size: st.size, ino: st.ino });
      if (kind === "dir") rec(r);
    }
  };
  rec("");
  return out;
}

/**
 * fs-verity digests (sha256, 4 KiB blocks: the kernel's and particle's parameters) with Debian's
 * `fsverity digest --compact`, in 2 processes of 500 files each. --compact prints one digest per
 * argument, in order, so names with spaces or odd bytes need no parsing.
 */
export async function fsverityDigests(root: string, rels: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const batches: string[][] = [];
  for (let i = 0; i < rels.length; i += 500) batches.push(rels.slice(i, i + 500));
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const b = batches[next++]!;
      const lines = (await sh(["fsverity", "digest", "--compact", ...b], { cwd: root })).trimEnd().split("\n");
      if (lines.length !== b.length) throw new BenchError(`fsverity digest: ${lines.length} digests for ${b.length} files`);
      b.forEach((rel, i) => out.set(rel, lines[i]!.trim()));
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

/** The composefs overlay xattrs for a file whose fs-verity digest is `hex`. */
export function overlayXattrs(hex: string): { redirect: Buffer; metacopy: Buffer } {
  const redirect = Buffer.from(`/${hex.slice(0, 2)}/${hex.slice(2)}`); // 66 bytes
  // struct ovl_metacopy: version 0, len 36, flags 0, digest_algo 1 (sha256), then the digest.
  const metacopy = Buffer.concat([Buffer.from([0, 36, 0, 1]), Buffer.from(hex, "hex")]);
  return { redirect, metacopy };
}

export const MKFS_REF_ARGS = ["mkfs.erofs", "--quiet", "-Uf2e4a7a2-5b0c-4a35-9b8e-0d3c8f1e6a11"];

async function build(final: string, key: string): Promise<void> {
  const t0 = performance.now();
  const dir = `${final}.building`;
  rmSync(dir, { recursive: true, force: true });
  const tree = join(dir, "tree");
  mkdirSync(join(tree, "usr", "lib"), { recursive: true });

  log(`building the workload in ${dir} (once; cached by recipe key ${key})`);
  const missingDirs: string[] = [];
  for (const d of RECIPE.dirs) {
    const src = join(RECIPE.source, d);
    if (!existsSync(src)) { missingDirs.push(d); continue; }
    await sh(["cp", "-a", "--reflink=never", src, join(tree, "usr", d)]);
  }
  // usr/ and usr/lib/ are created by us: give them fixed times so the tree does not depend on when it was built.
  for (const d of [join(tree, "usr", "lib"), join(tree, "usr"), tree]) { chmodSync(d, 0o755); utimesSync(d, 1e9, 1e9); }

  const entries = walk(tree);
  const files = entries.filter((e) => e.kind === "file");
  const inoCount = new Map<number, number>();
  for (const f of files) inoCount.set(f.ino, (inoCount.get(f.ino) ?? 0) + 1);
  const seen = new Set<number>();
  let regularBytes = 0;
  for (const f of files) if (!seen.has(f.ino)) { seen.add(f.ino); regularBytes += f.size; }

  log(`fs-verity digests of ${files.length} files (for the reference image and the expected object counts)`);
  const digests = await fsverityDigests(tree, files.map((f) => f.rel));
  const nonEmpty = files.filter((f) => f.size > 0);
  const distinct = new Set(nonEmpty.map((f) => digests.get(f.rel)!));

  // Changed files: evenly spread over the sorted list of eligible files. Eligible: non-empty (an empty
  // file has no object) and not hardlinked inside the tree (replacing one link would change the tree's
  // structure, not just contents).
  const eligible = nonEmpty.filter((f) => inoCount.get(f.ino) === 1);
  const target = Math.round(files.length * RECIPE.changeFraction);
  const changed: Entry[] = [];
  for (let j = 0; j < target; j++) changed.push(eligible[Math.floor(((j + 0.5) * eligible.length) / target)]!);

  log(`tree-changed: hardlink copy, ${changed.length} files replaced`);
  const treeChanged = join(dir, "tree-changed");
  await sh(["cp", "-al", tree, treeChanged]);
  const suffix = Buffer.from(RECIPE.changeSuffix);
  let bytesAfter = 0;
  for (const c of changed) {
    const p = join(treeChanged, c.rel);
    const st = statSync(p);
    const data = Buffer.concat([readFileSync(p), suffix]);
    unlinkSync(p); // new inode; tree/ keeps the old one
    writeFileSync(p, data, { mode: 0o600 });
    // Owner, then mode (chown clears setuid/setgid), then times.
    chownSync(p, st.uid, st.gid);
    chmodSync(p, st.mode & 0o7777);
    utimesSync(p, st.atime, new Date(st.mtimeMs + 1000));
    bytesAfter += data.length;
  }
  // cp -al gave the directories new inodes with the old mtimes; the replaced files' parent dirs got
  // new mtimes from unlink/create. Fine: that is what an update does to a directory.
  const newDigests = await fsverityDigests(treeChanged, changed.map((c) => c.rel));
  const newObjects = new Set([...newDigests.values()].filter((d) => !distinct.has(d)));

  log("reference tree for the metadata image: empty files with only the two overlay xattrs");
  const refTree = join(dir, "ref-tree");
  await sh(["cp", "-a", "--attributes-only", tree, refTree]);
  const done = new Set<number>();
  let withXattrs = 0;
  for (const f of nonEmpty) {
    if (done.has(f.ino)) continue; // hardlinks share the inode and its xattrs
    done.add(f.ino);
    const { redirect, metacopy } = overlayXattrs(digests.get(f.rel)!);
    const p = Buffer.from(join(refTree, f.rel));
    setXattr(p, Buffer.from("trusted.overlay.metacopy"), metacopy);
    setXattr(p, Buffer.from("trusted.overlay.redirect"), redirect);
    withXattrs++;
  }
  const refImage = join(dir, "ref.erofs");
  const mkfsArgs = [...MKFS_REF_ARGS, refImage, refTree];
  await sh(mkfsArgs);

  const manifest: WorkloadManifest = {
    recipe: RECIPE,
    key,
    builtAt: new Date().toISOString(),
    buildSeconds: (performance.now() - t0) / 1000,
    missingDirs,
    counts: {
      regularFiles: files.length,
      regularInodes: inoCount.size,
      regularBytes,
      emptyFiles: files.length - nonEmpty.length,
      dirs: entries.filter((e) => e.kind === "dir").length,
      symlinks: entries.filter((e) => e.kind === "symlink").length,
      other: entries.filter((e) => e.kind === "other").length,
      distinctDigests: distinct.size,
    },
    changed: {
      files: changed.length,
      paths: changed.map((c) => c.rel),
      bytesAfter,
      expectedNewObjects: newObjects.size,
    },
    reference: {
      mkfsArgs: mkfsArgs.map((a) => a.replace(dir, final)),
      imageBytes: statSync(refImage).size,
      filesWithOverlayXattrs: withXattrs,
    },
  };
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  renameSync(dir, final); // the cache entry appears whole or not at all
  log(`workload built in ${manifest.buildSeconds.toFixed(0)} s`);
}

/** Returns the cached workload, building it first if needed. */
export async function workload(opts: { rebuild: boolean }): Promise<Workload> {
  const key = recipeKey();
  const cache = benchCacheDir();
  mkdirSync(cache, { recursive: true });
  const dir = join(cache, `store-${key}`);
  const src = join(dir, "src");
  const tree = join(dir, "tree");
  const treeChanged = join(dir, "tree-changed");

  // An interrupted run may have left one of the trees renamed onto src/: put it back.
  if (existsSync(src)) {
    if (!existsSync(tree)) renameSync(src, tree);
    else if (!existsSync(treeChanged)) renameSync(src, treeChanged);
    else throw new BenchError(`${src} exists next to both trees; remove it`);
  }
  if (opts.rebuild) rmSync(dir, { recursive: true, force: true });
  if (!existsSync(join(dir, "manifest.json"))) {
    // Older workloads (another recipe) are 4+ GB each: drop them.
    for (const n of readdirSync(cache)) if (n.startsWith("store-") && n !== `store-${key}`) {
      log(`removing stale workload ${n}`);
      rmSync(join(cache, n), { recursive: true, force: true });
    }
    await build(dir, key);
  }
  const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as WorkloadManifest;
  return { dir, tree, treeChanged, refTree: join(dir, "ref-tree"), refImage: join(dir, "ref.erofs"), src, manifest };
}

/** Puts `which` tree at the common staging path; returns a function that puts it back. */
export function placeAtSrc(w: Workload, which: "tree" | "changed"): () => void {
  const from = which === "tree" ? w.tree : w.treeChanged;
  renameSync(from, w.src);
  return () => renameSync(w.src, from);
}
