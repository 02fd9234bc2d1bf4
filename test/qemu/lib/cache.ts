// Build cache for the QEMU tier, outside the checkout ($PARTICLE_CACHE, default ~/.cache/particle-os),
// so CI repeats on this machine skip the 2-minute mmdebstrap and the 1-2 minute dracut runs.
// Entries are keyed by a hash of every input; each is built under tmp/ and renamed into place, so
// concurrent builders never see a half-built entry (the loser of the rename race drops its copy).
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
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
  if (existsSync(final)) return final;
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
  return final;
}
