// Entry file names: `particle-<version>-<id>+3.conf`. The `+LEFT[-DONE]` part is systemd-boot's boot
// counter: the loader renames `+3` → `+2-1` → … before each try, systemd-bless-boot renames the file to
// the counter-less name once boot-complete.target is reached, and an entry at `+0-N` is sorted last
// (never chosen by a glob default). The entry *id* systemd-boot matches `default` against is the
// lower-cased file name without the counter, `.conf` kept.

export const ENTRY_PREFIX = "particle-";
export const ENTRY_SUFFIX = ".conf";
/** Tries a new entry gets before systemd-boot gives up on it. */
export const DEFAULT_TRIES = 3;

export interface EntryName {
  /** The file name as found on disk. */
  file: string;
  /** What systemd-boot calls the entry id: lower-cased, counter removed, `.conf` kept. */
  id: string;
  /** Tries left, or undefined when the entry has no counter (blessed, or never counted). */
  triesLeft?: number;
  triesDone?: number;
}

// The counter must sit right before the suffix; anything else is part of the name.
const COUNTER = /^(.*)\+(\d+)(?:-(\d+))?\.conf$/i;

export function parseEntryFileName(file: string): EntryName | undefined {
  if (file.startsWith(".") || !file.toLowerCase().endsWith(ENTRY_SUFFIX)) return undefined;
  const m = COUNTER.exec(file);
  if (!m) return { file, id: file.toLowerCase() };
  return {
    file,
    id: `${m[1]}${ENTRY_SUFFIX}`.toLowerCase(),
    triesLeft: Number(m[2]),
    triesDone: m[3] === undefined ? 0 : Number(m[3]),
  };
}

/** A version string safe in a file name and free of `+` (which would read as a counter). */
export function fileSafe(s: string): string {
  const t = s.replace(/[^A-Za-z0-9._~]+/g, "_").replace(/^[._]+/, "");
  return t === "" ? "0" : t;
}

/** `particle-<version>-<id>[+tries].conf`; tries 0/undefined = no boot counting. */
export function entryFileName(version: string | undefined, deployId: string, tries: number | undefined = DEFAULT_TRIES): string {
  const counter = tries ? `+${tries}` : "";
  return `${ENTRY_PREFIX}${fileSafe(version ?? "0")}-${deployId}${counter}${ENTRY_SUFFIX}`;
}

export const isParticleEntry = (n: EntryName): boolean => n.id.startsWith(ENTRY_PREFIX);

/** An entry with no tries left: systemd-boot sorts it last and a glob default skips it. */
export const isBad = (n: EntryName): boolean => n.triesLeft === 0;
