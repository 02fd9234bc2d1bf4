// ostree's "devino cache": a file whose device, inode, size, mtime and ctime are unchanged since the
// last stage has the same content, so its digest is reused without reading it. ctime is part of
// the key because it cannot be set from userspace: any write or chmod moves it.
//
// The cache holds an entry for every file of the last stage plus one for every file of this one, so
// its per-file cost is part of staging's peak memory (issue 13). The last stage's entries are one
// string each, as parsed; this stage's are seven numbers in a typed array and the digest string the
// tree already holds. Building "size:mtime:ctime digest" per file when it is remembered kept ~10
// strings per file alive until the save (JSC keeps a template literal's parts as a rope): ~480k
// strings for a 60k-file tree.
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
  /** dev, ino, size, mtimeSec, mtimeNsec, ctimeSec, ctimeNsec per remembered file. */
  private keys = new Float64Array(7 * 1024);
  private digests: string[] = [];

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
    const n = this.digests.length;
    if (7 * (n + 1) > this.keys.length) {
      const grown = new Float64Array(this.keys.length * 2);
      grown.set(this.keys);
      this.keys = grown;
    }
    const f = this.keys;
    const at = 7 * n;
    f[at] = k.dev;
    f[at + 1] = k.ino;
    f[at + 2] = k.size;
    f[at + 3] = k.mtimeSec;
    f[at + 4] = k.mtimeNsec;
    f[at + 5] = k.ctimeSec;
    f[at + 6] = k.ctimeNsec;
    this.digests.push(digest);
  }

  /** Keeps only the files of the latest stage, so the cache does not grow without bound. */
  save(): void {
    this.entries = new Map();
    // Keys and values are digits, ':', '.', ' ' and hex: nothing to escape, and no 60k-key object to build.
    const body: string[] = [];
    const f = this.keys;
    for (let i = 0; i < this.digests.length; i++) {
      const k: StatKey = { dev: f[7 * i]!, ino: f[7 * i + 1]!, size: f[7 * i + 2]!, mtimeSec: f[7 * i + 3]!, mtimeNsec: f[7 * i + 4]!, ctimeSec: f[7 * i + 5]!, ctimeNsec: f[7 * i + 6]! };
      body.push(`"${devinoOf(k)}":"${stampOf(k)} ${this.digests[i]}"`);
    }
    writeFileAtomic(this.path, `{"version":2,"entries":{${body.join(",")}}}`);
  }
}
