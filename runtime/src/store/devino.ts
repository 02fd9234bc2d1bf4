// ostree's "devino cache": a file whose device, inode, size, mtime and ctime are unchanged since the
// last stage has the same content, so its digest is reused without reading it. ctime is part of
// the key because it cannot be set from userspace: any write or chmod moves it.
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { writeFileAtomic } from "../system/atomic.ts";
import type { StatKey } from "../tree/scan.ts";

const CacheFile = z.object({
  version: z.literal(1),
  /** "dev:ino" → [size, mtimeNs, ctimeNs, digest] (numbers as decimal strings: they exceed 2^53). */
  entries: z.record(z.string(), z.tuple([z.string(), z.string(), z.string(), z.string()])),
});

export class DevinoCache {
  private entries: Record<string, [string, string, string, string]> = {};
  private fresh: Record<string, [string, string, string, string]> = {};

  constructor(private readonly path: string) {
    if (!existsSync(path)) return;
    try {
      this.entries = CacheFile.parse(JSON.parse(readFileSync(path, "utf8"))).entries;
    } catch {
      // A damaged cache only costs re-hashing; never fail a stage over it.
      this.entries = {};
    }
  }

  lookup(k: StatKey): string | undefined {
    const e = this.entries[`${k.dev}:${k.ino}`];
    if (!e) return undefined;
    if (e[0] !== String(k.size) || e[1] !== String(k.mtimeNs) || e[2] !== String(k.ctimeNs)) return undefined;
    return e[3];
  }

  remember(k: StatKey, digest: string): void {
    this.fresh[`${k.dev}:${k.ino}`] = [String(k.size), String(k.mtimeNs), String(k.ctimeNs), digest];
  }

  /** Keeps only the files of the latest stage, so the cache does not grow without bound. */
  save(): void {
    writeFileAtomic(this.path, JSON.stringify({ version: 1, entries: this.fresh }));
  }
}
