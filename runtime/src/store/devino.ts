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
      const bytes = readFileSync(path);
      // The file as render() writes it is read straight into the Map; anything else (a hand-edited
      // cache) goes through JSON.parse, whose 60k-property object and Object.entries' pairs were
      // ~20 MB of garbage at the start of a re-stage (issue 13).
      this.entries = parseRendered(bytes) ?? new Map(Object.entries(CacheFile.parse(JSON.parse(bytes.toString("utf8"))).entries));
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
    writeFileAtomic(this.path, this.render());
  }

  /**
   * The cache file: keys and values are digits, '-', ':', '.', ' ' and hex, so nothing needs
   * escaping. Written byte by byte into one buffer: a string per entry (a template literal is ~15
   * strings in JSC before it is flattened) made the save the last peak of a stage's memory, +45 MB
   * of garbage for 60k files (issue 13). Same text as `"${devinoOf(k)}":"${stampOf(k)} ${digest}"`.
   */
  private render(): Buffer {
    const n = this.digests.length;
    let out = Buffer.allocUnsafe(64 + n * 160);
    let len = 0;
    const byte = (c: number) => {
      if (len === out.length) {
        const grown = Buffer.allocUnsafe(2 * out.length);
        out.copy(grown);
        out = grown;
      }
      out[len++] = c;
    };
    const text = (s: string) => {
      for (let i = 0; i < s.length; i++) byte(s.charCodeAt(i));
    };
    const digits = new Uint8Array(24);
    const int = (v: number) => {
      if (!Number.isSafeInteger(v)) return text(String(v));
      if (v < 0) byte(0x2d);
      let a = Math.abs(v);
      let d = 0;
      do {
        digits[d++] = 0x30 + (a % 10);
        a = Math.floor(a / 10);
      } while (a > 0);
      while (d > 0) byte(digits[--d]!);
    };
    const f = this.keys;
    text(`{"version":2,"entries":{`);
    for (let i = 0; i < n; i++) {
      const at = 7 * i;
      if (i > 0) byte(0x2c);
      byte(0x22);
      int(f[at]!); byte(0x3a); int(f[at + 1]!);
      text(`":"`);
      int(f[at + 2]!); byte(0x3a); int(f[at + 3]!); byte(0x2e); int(f[at + 4]!); byte(0x3a); int(f[at + 5]!); byte(0x2e); int(f[at + 6]!);
      byte(0x20);
      text(this.digests[i]!);
      byte(0x22);
    }
    text("}}");
    return out.subarray(0, len);
  }
}

const HEAD = Buffer.from(`{"version":2,"entries":{`);
const QUOTE = 0x22;

/**
 * The entries of a cache file exactly as render() writes it: `"key":"value"` pairs separated by
 * commas, no whitespace, no escapes. undefined for any other text, which the caller parses as JSON.
 */
export function parseRendered(b: Buffer): Map<string, unknown> | undefined {
  if (b.length < HEAD.length + 2 || !b.subarray(0, HEAD.length).equals(HEAD)) return undefined;
  const out = new Map<string, unknown>();
  let p = HEAD.length;
  // One quoted run of plain bytes; -1 when it is not one.
  const quoted = (from: number): number => {
    if (b[from] !== QUOTE) return -1;
    for (let i = from + 1; i < b.length; i++) {
      const c = b[i]!;
      if (c === QUOTE) return i;
      if (c === 0x5c || c < 0x20 || c > 0x7e) return -1;
    }
    return -1;
  };
  if (b[p] !== 0x7d) {
    for (;;) {
      const keyEnd = quoted(p);
      if (keyEnd < 0 || b[keyEnd + 1] !== 0x3a) return undefined;
      const valueEnd = quoted(keyEnd + 2);
      if (valueEnd < 0) return undefined;
      out.set(b.toString("latin1", p + 1, keyEnd), b.toString("latin1", keyEnd + 3, valueEnd));
      p = valueEnd + 1;
      if (b[p] === 0x2c) p++;
      else break;
    }
  }
  return p + 2 === b.length && b[p] === 0x7d && b[p + 1] === 0x7d ? out : undefined;
}
