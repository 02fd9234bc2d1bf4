// Staging: a tree becomes a deployment. The order is what makes it crash-safe:
//   1. everything is built under particle/tmp/<work>/ (objects, image, deployment dir);
//   2. syncfs: the data is durable before any of it gets a final name;
//   3. objects and the image are renamed into objects/ and images/ (content-addressed, so a
//      crash here leaves only unreferenced, complete objects that cleanup collects);
//   4. syncfs again, then the deployment directory is renamed into deploy/ in one step.
// A crash before 4 leaves no deployment; anything left in tmp/ is removed by the next command.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { renderManifest, type Manifest, type OciOrigin, type RootFormat } from "../manifest.ts";
import { fsyncDir, writeFileAtomic } from "../system/atomic.ts";
import { run } from "../system/exec.ts";
import { diskFree, syncfsPath } from "../system/libc.ts";
import { scanTree } from "../tree/scan.ts";
import { fileInodesOf, sortEntries, type Inode } from "../tree/model.ts";
import { DigestTable } from "../tree/object-digests.ts";
import { DPKG_DB, moveDpkgDatabase, VAR_DPKG } from "../tree/dpkg-db.ts";
import { digestFile, sha256File } from "../verity/file.ts";
import { verityDigest } from "../verity/digest.ts";
import { writeErofs } from "../erofs/writer.ts";
import { composefsImage } from "../composefs/encode.ts";
import { DEVINO_FILE, DevinoCache } from "./devino.ts";
import { parseOsRelease } from "./os-release.ts";
import { nextId, OBJECT_LIST } from "./deployments.ts";
import { imagePath, objectPath, storeLayout, type StoreLayout } from "./layout.ts";
import { acquireLock } from "./lock.ts";
import { CONTENT_MODE, secureStore } from "./private.ts";
import { precheckStageSpace } from "./space.ts";
import { unrepresentableInSquashfs } from "./squashfs-times.ts";
import { commitObjects, ensureObjectDirs, objectLookup } from "./objects.ts";
import { ingestAll, tmpFor } from "./ingest-pool.ts";
import { releaseMemory } from "../system/memory.ts";
import type { ScannedFile } from "../tree/scan.ts";
import { cleanTmp } from "./tmp.ts";
import { describeSource, materialize, parseSource, type Source } from "./source.ts";
import { buildOciTree } from "../oci/image-tree.ts";
import { Progress, type ProgressOut } from "../oci/progress.ts";
import type { Policy } from "../oci/skopeo.ts";
import { INSECURE_WARNING } from "../oci/policy.ts";
import type { ImageRef } from "../oci/transport.ts";
import { trackedReference } from "../oci/track-as.ts";
import { checkpoint } from "../system/die-at.ts";
import type { FormatRequest } from "../kernel/format-choice.ts";
import { FORMAT_PREFERENCE } from "../kernel/capabilities.ts";
import { resolveFormat } from "../kernel/resolve.ts";
import { bootKernel } from "../kernel/probe.ts";
import { dirView, inodeView } from "../kernel/tree-view.ts";

const EMPTY_DIGEST = verityDigest(new Uint8Array(0));
/** Copy with copy_file_range(2) instead of write(2): measured no faster on ext4 (docs/perf-notes.md), kept switchable for other filesystems. */
const COPY_RANGE = process.env.PARTICLE_COPY_RANGE === "1";

export interface StageOptions {
  sysroot: string;
  source: string;
  /** "auto": the newest format the tree's own kernel can boot (kernel/format-choice.ts). */
  format: FormatRequest;
  version?: string;
  log?: (msg: string) => void;
  /** Refuse a source with no kernel (before anything is committed): it is about to get a boot entry. */
  requireKernel?: boolean;
  /** The caller holds the store lock and cleaned tmp/ itself (particle layer stages a mount under tmp/). */
  lockHeld?: boolean;
  /** Manifest fields set by the caller: a better `source`, and what `particle layer` records. */
  manifest?: Partial<Pick<Manifest, "source" | "base" | "layered" | "oci">>;
  /** Image sources: the signature policy skopeo applies (default: the system's policy.json). */
  policy?: Policy;
  /**
   * Image sources: the reference to record as oci.reference, the one `particle upgrade` follows,
   * instead of the source's (install --target-imgref). The digests recorded stay the source's.
   */
  trackAs?: string;
  /** Image sources: where progress bars or lines go (default: nowhere). */
  progressOut?: ProgressOut;
  /**
   * Directory sources: the user gives the tree away (ostree's --consume). Its files become the
   * objects by hardlink instead of being copied, and the tree is removed once the deployment exists.
   */
  consume?: boolean;
  /**
   * Directory sources, composefs: the object digest of a file known without reading it (path
   * relative to the tree, its bytes as latin1), as `particle layer` knows for every file of its
   * overlay that comes unchanged from the lower deployment (layer/known-digests.ts).
   */
  knownDigest?: (rel: string) => string | undefined;
}

export interface StageResult {
  id: string;
  format: RootFormat;
  imageDigest: string;
  objectsAdded: number;
  bytesAdded: number;
  files: number;
  bytes: number;
  source: string;
  /** Files that were not read: digest from the devino cache, or empty. */
  filesReused: number;
  /** Image sources: what was staged (also in the manifest). */
  oci?: OciOrigin;
}

export function initStore(l: StoreLayout, log?: (m: string) => void): void {
  secureStore(l, log);
  for (const d of [l.deploy, l.var]) mkdirSync(d, { recursive: true });
  ensureObjectDirs(l);
}

export async function stage(opts: StageOptions): Promise<StageResult> {
  const log = opts.log ?? (() => {});
  const src = parseSource(opts.source);
  const trackAs = opts.trackAs === undefined ? undefined : trackedReference(opts.source, opts.trackAs);
  // Refused before anything is read: a consumed tree is removed, so only a stage that links its files may take it.
  if (opts.consume && (src.kind !== "dir" || (opts.format !== "composefs" && opts.format !== "auto"))) {
    throw new Error(`--consume: only a dir: source staged as composefs can be consumed (got ${src.kind === "oci" ? "an image" : `${src.kind}:`} source, format ${opts.format})`);
  }
  const l = storeLayout(opts.sysroot);
  initStore(l, log);
  const lock = opts.lockHeld ? undefined : acquireLock(l.lock, `stage ${opts.source}`, log);
  let work: string | undefined;
  try {
    if (!opts.lockHeld) cleanTmp(l);
    work = mkdtempSync(join(l.tmp, "stage-"));
    return await stageLocked(l, { ...opts, trackAs }, work, src, log);
  } catch (e) {
    throw explainNoSpace(e, opts.sysroot);
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
    lock?.release();
  }
}

async function stageLocked(l: StoreLayout, opts: StageOptions, work: string, src: ReturnType<typeof parseSource>, log: (m: string) => void): Promise<StageResult> {
  const sourceName = opts.manifest?.source ?? describeSource(src);
  const t0 = performance.now();
  // Resident memory beside the time: peak memory is one of staging's budgets (issue 13).
  const at = () => `${((performance.now() - t0) / 1000).toFixed(1)}s, ${Math.round(process.memoryUsage.rss() / 2 ** 20)} MiB`;
  const image = join(work, "image");
  const prepared = src.kind === "oci"
    ? await prepareImage(l, opts, work, src.image, log)
    : await prepareDir(l, opts, work, src, log, at);
  const { root, staged, format } = prepared;
  if (opts.requireKernel && !prepared.kernel) {
    throw new Error(`source ${sourceName}: no kernel in it (looked for /usr/lib/modules/<kver>/vmlinuz and /boot/vmlinuz-<kver>), so it cannot boot; nothing was staged`);
  }
  addMountPoints(root);
  // mksquashfs reads the directory itself: a squashfs root keeps its database where the tree has it.
  if (format !== "squashfs" && moveDpkgDatabase(root) === "moved") log(`the dpkg database moves to /${DPKG_DB} (/${VAR_DPKG} links to it)`);

  if (format === "composefs") {
    const cfs = composefsImage(root);
    await writeErofs(cfs.root, image, { mode: "metadata", xattrsOf: cfs.xattrsOf });
    releaseMemory();
  } else if (format === "erofs") {
    await writeErofs(root, image, { mode: "full" });
  } else {
    const bad = unrepresentableInSquashfs(root);
    if (bad) throw new Error(`source ${sourceName}: ${bad.path} has mtime ${bad.sec} (seconds since 1970), which squashfs cannot store (it keeps 1970 to 2106 only); use --format erofs or composefs`);
    await mksquashfs(prepared.treeDir!, image);
  }

  const imageDigest = format === "squashfs" ? sha256File(image) : digestFile(image);
  log(`[${at()}] wrote the ${format} image (${statSync(image).size} bytes)`);
  const imageFinal = imagePath(l, imageDigest, format);
  // A full image holds every file's bytes; a metadata image, every name and xattr.
  chmodSync(image, CONTENT_MODE);
  let bytesAdded = prepared.bytesAdded;
  if (!existsSync(imageFinal)) bytesAdded += statSync(image).size;

  // 2. Data durable before it gets a final name.
  syncfsPath(l.root);
  log(`[${at()}] data synced to disk`);
  checkpoint("stage:data-synced");
  // 3. Content-addressed names: safe to publish before the deployment exists.
  commitObjects(l, staged);
  checkpoint("stage:objects-committed");
  if (!existsSync(imageFinal)) renameSync(image, imageFinal);
  checkpoint("stage:image-committed");
  const id = nextId(readdirSync(l.deploy));
  const manifest: Manifest = {
    schema: 1,
    id,
    format,
    imageDigest,
    source: sourceName,
    created: new Date().toISOString(),
    version: opts.version ?? prepared.version,
    files: prepared.fileCount,
    bytes: prepared.totalBytes,
    kernel: prepared.kernel,
    ...(prepared.oci ? { oci: prepared.oci } : {}),
    ...opts.manifest,
  };
  const dep = join(work, "deploy");
  mkdirSync(join(dep, "etc", "upper"), { recursive: true });
  mkdirSync(join(dep, "etc", "work"), { recursive: true });
  writeFileAtomic(join(dep, "deployment.json"), renderManifest(manifest));
  if (format === "composefs") writeFileAtomic(join(dep, OBJECT_LIST), usedObjects(root, prepared.digests ?? new DigestTable()));
  syncfsPath(l.root);
  checkpoint("stage:deployment-written");
  // 4. The deployment appears in one rename.
  renameSync(dep, join(l.deploy, id));
  checkpoint("stage:deployment-renamed");
  fsyncDir(l.deploy);
  prepared.cache?.save();
  if (opts.consume && src.kind === "dir") removeConsumed(prepared.treeDir!, log);
  return {
    id, format, imageDigest, objectsAdded: prepared.objectsAdded, bytesAdded, files: prepared.fileCount,
    bytes: prepared.totalBytes, source: sourceName, filesReused: prepared.filesReused,
    ...(prepared.oci ? { oci: prepared.oci } : {}),
  };
}

/** A tree ready to be imaged: file contents already digested, new objects staged under work/. */
interface Prepared {
  root: Inode;
  /** Chosen for the tree's own kernel once the tree could be read. */
  format: RootFormat;
  /** digest → staged temp file, for objects the store does not have. */
  staged: Iterable<[digest: string, tmp: string]>;
  objectsAdded: number;
  bytesAdded: number;
  filesReused: number;
  fileCount: number;
  totalBytes: number;
  version?: string;
  kernel?: string;
  /** Directory sources: the tree on disk (mksquashfs reads it). */
  treeDir?: string;
  cache?: DevinoCache;
  oci?: OciOrigin;
  /** The digests the tree's ObjectRefs point into (directory sources). */
  digests?: DigestTable;
}

async function prepareDir(l: StoreLayout, opts: StageOptions, work: string, src: Exclude<Source, { kind: "oci" }>, log: (m: string) => void, at: () => string): Promise<Prepared> {
  const treeDir = await materialize(src, work);
  const kernel = bootKernel(dirView(treeDir));
  const format = resolveFormat(opts.format, dirView(treeDir), kernel, FORMAT_PREFERENCE, log);
  // --format auto is resolved only here, from the tree's kernel: a tree whose kernel needs another
  // format is refused before any of its files is linked away.
  if (opts.consume && format !== "composefs") throw new Error(`--consume: only a tree staged as composefs can be consumed; its kernel boots ${format} (nothing was staged, the tree is untouched)`);
  // A tarball is unpacked under work/, which is removed afterwards: its files can become the
  // objects themselves. A directory is consumed only when the user gives it away (--consume).
  const consume = src.kind === "tar" || (src.kind === "dir" && opts.consume === true);
  // A directory under tmp/ (a layer's overlay mount) gets new device numbers each time, and a
  // consumed tree is gone afterwards: no cache.
  // Each distinct digest once, as 32 bytes; files and the devino cache's records point into it
  // (tree/object-digests.ts).
  const digests = new DigestTable();
  const cache = src.kind === "dir" && !opts.lockHeld && !consume ? new DevinoCache(join(l.cache, DEVINO_FILE), digests) : undefined;
  const scan = scanTree(treeDir, cache && ((k) => cache.bare(k)));
  log(`[${at()}] scanned ${scan.fileCount} files, ${scan.totalBytes} bytes`);
  const short = precheckStageSpace(format, scan.fileCount, scan.storedBytes, opts.sysroot, diskFree(l.root).free);
  if (short) throw short;
  let objectsAdded = 0;
  let bytesAdded = 0;
  let filesReused = 0;
  digests.reserve(scan.files.length);
  // Digest number → the index of the file whose bytes were staged for it (its temp path is
  // tmpFor(index)), or -1: numbers, not a map keyed on digest strings (issue 13).
  let staged: Int32Array = new Int32Array(0);
  const objectsDir = join(work, "objects");

  if (format === "composefs") {
    mkdirSync(objectsDir);
    const { todo, reused, known } = filesToRead(l, scan.files, treeDir, opts.knownDigest, cache, digests);
    filesReused += reused;
    scan.files.length = 0;
    // The last stage's records and the store's listing have answered every question they will
    // be asked: ~13 MB for 60k files, freed before the image phase (issue 13).
    cache?.forgetLast();
    cache?.expect(todo.length);
    await ingestAll(opts.sysroot, todo, objectsDir, { consume, copyRange: COPY_RANGE }, (i, digest, at, isStaged, bytes) => {
      const file = todo[i]!;
      const n = digests.internBytes(digest, at);
      file.inode.data = digests.ref(n);
      cache?.remember(file, n, file.inode.xattrs.length > 0);
      // Read and answered: its record and path (~230 bytes a file) need not wait for the last file
      // to be read, which was the ingest's memory peak (issue 13). ingestAll has packed it already.
      (todo as (ScannedFile | undefined)[])[i] = undefined;
      if (!isStaged) return;
      // Two files with the same new content: keep the first copy. ingestAll stages file i at
      // tmpFor(objectsDir, i), so the index names the temp file.
      if (n >= staged.length) staged = grownStaged(staged, digests.size);
      if (staged[n]! >= 0) rmSync(tmpFor(objectsDir, i));
      else {
        staged[n] = i;
        objectsAdded++;
        bytesAdded += bytes;
      }
    });
    const read = todo.length;
    // Each record was let go as its file was answered; the array of empty slots goes here (a heap
    // census had found the records alive through the image phase, issue 13).
    todo.length = 0;
    // The records just dropped and the workers' replies are garbage now, and Bun had not
    // collected them before the image phase stacked its own allocations on top: with this
    // collection a 60k-file first stage peaked at ~195 MB instead of ~237, a re-stage at ~211
    // instead of ~249, and the re-stage took no longer (issue 13).
    releaseMemory();
    log(`[${at()}] read ${read} files (${filesReused} unchanged since the last stage${known ? `, ${known} of them known from the lower deployment` : ""}), ${objectsAdded} new objects${consume ? " (consumed: hardlinked, not copied)" : ""}`);
  }
  return {
    format, root: scan.root, staged: stagedPaths(digests, staged, objectsDir), objectsAdded, bytesAdded, filesReused, fileCount: scan.fileCount, totalBytes: scan.totalBytes,
    version: osVersion(treeDir), kernel, treeDir, cache, digests,
  };
}

/**
 * Gives every file whose content the store already has its object (an empty file needs none: the
 * metadata image alone describes it); the rest are to be read. The store's listing lives only here.
 */
function filesToRead(l: StoreLayout, files: ScannedFile[], treeDir: string, knownDigest: StageOptions["knownDigest"], cache: DevinoCache | undefined, digests: DigestTable): { todo: ScannedFile[]; reused: number; known: number } {
  const todo: ScannedFile[] = [];
  const empty = digests.ref(digests.intern(EMPTY_DIGEST));
  const prefix = Buffer.byteLength(treeDir) + 1;
  const stored = objectLookup(l);
  let reused = 0;
  let known = 0;
  for (const file of files) {
    const inode = file.inode;
    if (inode.size === 0) {
      inode.data = empty;
      reused++;
      continue;
    }
    const digest = knownDigest?.(file.path.subarray(prefix).toString("latin1"));
    if (digest && stored(digest)) {
      inode.data = digests.ref(digests.intern(digest));
      reused++;
      known++;
      continue;
    }
    const hit = cache ? cache.find(file) : -1;
    if (hit >= 0) {
      const cached = cache!.digestAt(hit);
      if (stored(cached)) {
        const n = digests.intern(cached);
        inode.data = digests.ref(n);
        cache!.keep(hit, n);
        reused++;
        continue;
      }
    }
    todo.push(file);
  }
  return { todo, reused, known };
}

function* stagedPaths(digests: DigestTable, staged: Int32Array, dir: string): Generator<[string, string]> {
  for (let n = 0; n < staged.length; n++) if (staged[n]! >= 0) yield [digests.hex(n), tmpFor(dir, staged[n]!)];
}

/** `staged` with room for `size` digests, the new ones not staged (-1). */
function grownStaged(staged: Int32Array, size: number): Int32Array {
  const next = new Int32Array(Math.max(size, staged.length * 2, 1024)).fill(-1);
  next.set(staged);
  return next;
}

/**
 * An image's layers are streamed into the object store whatever the format: composefs needs the
 * objects, and a full erofs image reads each file's bytes from its staged object.
 */
async function prepareImage(l: StoreLayout, opts: StageOptions, work: string, img: ImageRef, log: (m: string) => void): Promise<Prepared> {
  if (opts.format === "squashfs") throw new Error(`source ${img.ref}: squashfs deployments need a directory or tar source (mksquashfs reads a directory); use --format composefs or erofs`);
  const policy = opts.policy ?? { kind: "system" };
  if (policy.kind === "insecure") (opts.progressOut ?? { write: (m: string) => log(m) }).write(`${INSECURE_WARNING}\n`);
  const t = await buildOciTree(l, img, work, policy, new Progress(opts.progressOut ?? { write: () => true }), log);
  const view = inodeView(t.root, (d) => t.sink.pathOf(d, (x) => objectPath(l, x)));
  const format = resolveFormat(opts.format, view, t.kernel, IMAGE_FORMATS, log);
  if (format === "erofs") {
    fileInodesOf(t.root, (inode) => {
      const d = inode.data as { kind: "object"; digest: string };
      if (inode.size > 0) inode.data = { kind: "path", path: Buffer.from(t.sink.pathOf(d.digest, (x) => objectPath(l, x))) };
    });
  }
  return {
    format,
    root: t.root,
    // A full erofs image carries the bytes itself: the staged objects are only its input.
    staged: format === "composefs" ? t.sink.staged : new Map(),
    objectsAdded: format === "composefs" ? t.sink.objectsAdded : 0,
    bytesAdded: format === "composefs" ? t.sink.bytesAdded : 0,
    filesReused: 0,
    fileCount: t.files,
    totalBytes: t.bytes,
    version: t.version,
    kernel: t.kernel,
    // What was pulled, under the name the deployment follows from now on (the same image).
    oci: opts.trackAs === undefined ? t.record : { ...t.record, reference: opts.trackAs },
  };
}

/** Image sources cannot become squashfs (mksquashfs reads a directory). */
const IMAGE_FORMATS: RootFormat[] = ["composefs", "erofs"];

/**
 * A consumed tree's files are now the store's objects (hardlinks): the tree must go, or an edit
 * in it would change a deployment's files. The deployment exists already, so a failure here is
 * reported, not fatal.
 */
function removeConsumed(tree: string, log: (m: string) => void): void {
  try {
    rmSync(tree, { recursive: true, force: true });
  } catch (e) {
    log(`warning: the deployment is staged, but the consumed tree ${tree} could not be removed: ${(e as Error).message}; remove it before editing anything in it`);
  }
}

/**
 * particle-boot mounts /etc and /var and keeps the physical root at /sysroot inside the read-only
 * image, where nothing can mkdir them later: a tree without them gets empty ones.
 */
export function addMountPoints(root: Inode): void {
  const entries = root.entries ?? (root.entries = []);
  for (const name of MOUNT_POINTS) {
    if (entries.some((e) => e.name.equals(name))) continue;
    entries.push({ name, inode: { kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec: root.mtimeSec, mtimeNsec: root.mtimeNsec, xattrs: [], size: 0, entries: [] } });
  }
  sortEntries(entries);
}
const MOUNT_POINTS = ["etc", "sysroot", "var"].map((n) => Buffer.from(n));

/** Every object the deployment's image redirects to (empty files need none), as the object list's bytes. */
function usedObjects(root: Inode, digests: DigestTable): Buffer {
  const ns: number[] = [];
  fileInodesOf(root, (inode) => {
    if (inode.size > 0 && inode.data?.kind === "object") ns.push(digests.numberOf(inode.data));
  });
  return digests.sortedBytes(ns);
}

async function mksquashfs(dir: string, out: string): Promise<void> {
  // -mkfs-time/-all-root are not used: owners and mtimes are part of the tree. Fixed mkfs time
  // keeps the image reproducible.
  const pseudo = ["etc", "sysroot", "var"].filter((d) => !existsSync(join(dir, d))).flatMap((d) => ["-p", `/${d} d 755 0 0`]);
  await run("mksquashfs", [dir, out, "-noappend", "-no-progress", "-quiet", "-xattrs", "-comp", "zstd", "-mkfs-time", "0", ...pseudo]);
}

function osVersion(tree: string): string | undefined {
  for (const p of ["etc/os-release", "usr/lib/os-release"]) {
    try {
      return parseOsRelease(readFileSync(join(tree, p), "utf8"));
    } catch { /* try the next */ }
  }
  return undefined;
}

function explainNoSpace(e: unknown, sysroot: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === "ENOSPC" || /ENOSPC|No space left/.test(String(err?.message))) {
    let free = "";
    try {
      const f = diskFree(sysroot);
      free = ` (${f.free} bytes free of ${f.total})`;
    } catch { /* keep the original error */ }
    return new Error(`staging failed: no space left on the filesystem of ${sysroot}${free}; nothing was deployed, the store is unchanged`);
  }
  return e;
}
