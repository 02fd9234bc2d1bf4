// Build cache for the QEMU tier, outside the checkout ($PARTICLE_CACHE, default ~/.cache/particle-os),
// so CI repeats on this machine skip the 2-minute mmdebstrap and the 1-2 minute dracut runs.
// Entries are keyed by a hash of every input; each is built under tmp/ and renamed into place, so
// concurrent builders never see a half-built entry (the loser of the rename race drops its copy).
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export function cacheRoot(): string {
  const dir = process.env.PARTICLE_CACHE || join(homedir(), ".cache", "particle-os");
  mkdirSync(join(dir, "tmp"), { recursive: true });
  return dir;
}

export function hashOf(...parts: (string | Buffer)[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(typeof p === "string" ? `${p.length}:${p}` : p);
  return h.digest("hex").slice(0, 16);
}

export async function fileHash(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/**
 * Returns cache entry `name` (a file or directory path), building it with `build(tmpPath)` when absent.
 * `build` must create `tmpPath` itself (a file or a directory).
 */
export async function cached(name: string, build: (tmpPath: string) => Promise<void>): Promise<string> {
  const root = cacheRoot();
  const final = join(root, name);
  if (existsSync(final)) {
    used(final);
    return final;
  }
  const work = mkdtempSync(join(root, "tmp", `${name}.`));
  const tmp = join(work, "out");
  try {
    await build(tmp);
    try {
      renameSync(tmp, final);
    } catch (e: any) {
      // Another builder won the race: its entry is equivalent (same key), keep it.
      if (!existsSync(final)) throw e;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  used(final);
  prune(root, name);
  return final;
}

/** Entries of one kind kept besides the newest: other checkouts (branches, CI) may still use them. */
export const KEEP_PER_KIND = 3;
/** Never prune an entry used this recently: a concurrent run may be booting it. */
const IN_USE_MS = 3 * 3600_000;

function used(path: string): void {
  const now = new Date();
  utimesSync(path, now, now);
}

/** The kind of an entry: its name without the input hash ("guest-tree-<hash>" → "guest-tree-"). */
export function kindOf(name: string): string | undefined {
  return /^(.*-)[0-9a-f]{16}(\.[a-z]+)?$/.exec(name)?.[1];
}

/**
 * Every build of dist/ makes a new guest tree, initramfs and disk (~1 GB): drop all but the most
 * recently used few of each kind, so a machine that runs CI again and again does not fill up.
 */
function prune(root: string, name: string): void {
  const kind = kindOf(name);
  if (!kind) return;
  const now = Date.now();
  const same = readdirSync(root)
    .filter((n) => n !== name && kindOf(n) === kind)
    .map((n) => ({ n, t: statSync(join(root, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { n, t } of same.slice(KEEP_PER_KIND)) if (now - t > IN_USE_MS) rmSync(join(root, n), { recursive: true, force: true });
}
