// The order systemd-boot shows entries in, which with a glob `default` is also the order in which
// it picks one (the first match wins): entries with no tries left go last; entries with a sort-key
// come before those without and are ordered by sort-key (ascending), machine-id, then version
// *descending*; ties fall back to the id, also descending. We give every particle entry the same
// sort-key and a version that is a boot-order generation: the higher generation boots first, so
// making a deployment the default is rewriting one entry with a new generation (one rename).
import type { EntryName } from "./filename.ts";

export const SORT_KEY = "particle";

export interface Orderable {
  name: EntryName;
  sortKey?: string;
  machineId?: string;
  version?: string;
}

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
const isAlnum = (c: string | undefined) => c !== undefined && /[A-Za-z0-9]/.test(c);

/**
 * A version comparison in the spirit of systemd's strverscmp_improved: runs of digits compare as
 * numbers, letters compare as text, `~` sorts before anything (pre-releases), other separators are
 * skipped. Returns <0, 0, >0.
 */
export function compareVersions(a: string, b: string): number {
  let i = 0;
  let j = 0;
  for (;;) {
    while (i < a.length && !isAlnum(a[i]) && a[i] !== "~") i++;
    while (j < b.length && !isAlnum(b[j]) && b[j] !== "~") j++;
    if (a[i] === "~" || b[j] === "~") {
      if (a[i] !== "~") return 1;
      if (b[j] !== "~") return -1;
      i++; j++;
      continue;
    }
    if (i >= a.length || j >= b.length) return (i < a.length ? 1 : 0) - (j < b.length ? 1 : 0);
    if (isDigit(a[i]) !== isDigit(b[j])) return isDigit(a[i]) ? 1 : -1;
    let ia = i, jb = j;
    if (isDigit(a[i])) {
      while (isDigit(a[ia])) ia++;
      while (isDigit(b[jb])) jb++;
      const x = a.slice(i, ia).replace(/^0+/, "");
      const y = b.slice(j, jb).replace(/^0+/, "");
      if (x.length !== y.length) return x.length - y.length;
      if (x !== y) return x < y ? -1 : 1;
    } else {
      while (isAlnum(a[ia]) && !isDigit(a[ia])) ia++;
      while (isAlnum(b[jb]) && !isDigit(b[jb])) jb++;
      const x = a.slice(i, ia);
      const y = b.slice(j, jb);
      if (x !== y) return x < y ? -1 : 1;
    }
    i = ia; j = jb;
  }
}

const cmpStr = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** systemd-boot's entry comparison (boot_entry_compare): negative means `a` is shown/tried first. */
export function compareEntries(a: Orderable, b: Orderable): number {
  const badA = a.name.triesLeft === 0 ? 1 : 0;
  const badB = b.name.triesLeft === 0 ? 1 : 0;
  if (badA !== badB) return badA - badB;
  if (!a.sortKey !== !b.sortKey) return a.sortKey ? -1 : 1;
  if (a.sortKey && b.sortKey) {
    const r = cmpStr(a.sortKey, b.sortKey) || cmpStr(a.machineId ?? "", b.machineId ?? "") || -compareVersions(a.version ?? "", b.version ?? "");
    if (r) return r;
  }
  const r = -compareVersions(a.name.id, b.name.id);
  if (r) return r;
  if (a.name.triesLeft === undefined || b.name.triesLeft === undefined) return 0;
  return b.name.triesLeft - a.name.triesLeft || (a.name.triesDone ?? 0) - (b.name.triesDone ?? 0);
}

export function sortEntries<T extends Orderable>(entries: readonly T[]): T[] {
  return [...entries].sort(compareEntries);
}

/** The generation a new default gets: one above every generation in use. */
export function nextGeneration(versions: ReadonlyArray<string | undefined>): number {
  let max = 0;
  for (const v of versions) {
    const n = Number.parseInt(v ?? "", 10);
    if (Number.isFinite(n) && n > max) max = n;
  }
  return max + 1;
}

/**
 * A glob as systemd-boot's efi_fnmatch reads it (`*`, `?`, `[...]`), case-insensitive as the loader
 * lower-cases both sides. Used to predict which entry a `default` pattern selects.
 */
export function globMatch(pattern: string, s: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const close = pattern.indexOf("]", i + 1);
      if (close < 0) re += "\\[";
      else { re += `[${pattern.slice(i + 1, close).replace(/\\/g, "\\\\")}]`; i = close; }
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`, "i").test(s);
}
