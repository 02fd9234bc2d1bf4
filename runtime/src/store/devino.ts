// ostree's "devino cache": a file whose device, inode, size, mtime and ctime are unchanged since the
// last stage has the same content, so its digest is reused without reading it. ctime is part of
// the key because it cannot be set from userspace: any write or chmod moves it.
//
// One string per file ("size:mtimeNs:ctimeNs digest") in a Map: the cache holds an entry for every
// file of the last stage plus one for every file of this one, so its per-file cost is part of
// staging's peak memory (issue 13).
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { writeFileAtomic } from "../system/atomic.ts";
import { devinoOf, stampOf, type StatKey } from "../tree/scan.ts";

/**
 * "dev:ino" → "size:mtimeSec.nsec:ctimeSec.nsec digest". The entries are checked one by one when
 * looked up, not here: a regex per entry at load was ~100 ms of a 2 s re-stage (60k entries), and a
 * bad entry only costs reading that file again.
 */
const CacheFile = z.object({
  version: z.literal(2),
  entries: z.custom<Record<string, unknown>>((v) => typeof v === "object" && v !== null && !Array.isArray(v)),
});
const DIGEST = /^[0-9a-f]{64}$/;

export class DevinoCache {
  private entries = new Map<string, unknown>();
  private fresh = new Map<string, string>();

  constructor(private readonly path: string) {
    if (!existsSync(path)) return;
    try {
      // Parsed first, then moved into a Map: lookups by a 60k-key object are slower and larger.
      this.entries = new Map(Object.entries(CacheFile.parse(JSON.parse(readFileSync(path, "utf8"))).entries));
    } catch {
      // A damaged cache (or one of the older format) only costs re-hashing; never fail a stage over it.
      this.entries = new Map();
    }
  }

  lookup(k: StatKey): string | undefined {
    const e = this.entries.get(devinoOf(k));
    if (typeof e !== "string") return undefined;
    const stamp = stampOf(k);
    if (e.length !== stamp.length + 65 || !e.startsWith(stamp) || e[stamp.length] !== " ") return undefined;
    const digest = e.slice(stamp.length + 1);
    return DIGEST.test(digest) ? digest : undefined;
  }

  remember(k: StatKey, digest: string): void {
    this.fresh.set(devinoOf(k), `${stampOf(k)} ${digest}`);
  }

  /** Keeps only the files of the latest stage, so the cache does not grow without bound. */
  save(): void {
    this.entries = new Map();
    // Keys and values are digits, ':', '.', ' ' and hex: nothing to escape, and no 60k-key object to build.
    const body: string[] = [];
    for (const [k, v] of this.fresh) body.push(`"${k}":"${v}"`);
    writeFileAtomic(this.path, `{"version":2,"entries":{${body.join(",")}}}`);
  }
}
