// Reading and writing loader/entries/ on the ESP. Every write is one atomic rename of one small
// file: that rename is the moment a deployment becomes bootable (or the default), so a power cut
// leaves either the old or the new entry, never a torn one. Temp files start with a dot, which
// systemd-boot skips.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { getKey, getOptions, parseEntry, renderEntry, setKey, type BlsEntry } from "../bls/entry.ts";
import { DEFAULT_TRIES, ENTRY_SUFFIX, isParticleEntry, parseEntryFileName, type EntryName } from "../bls/filename.ts";
import { getArg, splitCmdline } from "../bls/kargs.ts";
import { sortEntries } from "../bls/order.ts";
import { fsyncDir, writeFileAtomic } from "../system/atomic.ts";
import { syncGrub } from "./grub.ts";

export const ENTRIES_DIR = "loader/entries";

export interface LoadedEntry {
  name: EntryName;
  entry: BlsEntry;
  /** particle.deploy= from the options: the deployment this entry boots. */
  deployId?: string;
  sortKey?: string;
  machineId?: string;
  version?: string;
  options: string;
  linux?: string;
  initrd: string[];
}

/** Pure: one entry file's name and text to what status and the planners need. */
export function loadEntry(file: string, text: string): LoadedEntry | undefined {
  const name = parseEntryFileName(file);
  if (!name) return undefined;
  const entry = parseEntry(text);
  const options = getOptions(entry);
  return {
    name,
    entry,
    deployId: getArg(splitCmdline(options), "particle.deploy"),
    sortKey: getKey(entry, "sort-key"),
    machineId: getKey(entry, "machine-id"),
    version: getKey(entry, "version"),
    options,
    linux: getKey(entry, "linux"),
    initrd: entry.lines.flatMap((l) => (l.kind === "kv" && l.key === "initrd" ? [l.value] : [])),
  };
}

/** All entries on the ESP (ours and others), in systemd-boot's order. */
export function readEntries(esp: string): LoadedEntry[] {
  const dir = join(esp, ENTRIES_DIR);
  if (!existsSync(dir)) return [];
  const out: LoadedEntry[] = [];
  for (const f of readdirSync(dir)) {
    const e = loadEntry(f, readFileSync(join(dir, f), "utf8"));
    if (e) out.push(e);
  }
  return sortEntries(out);
}

export const particleEntries = (all: readonly LoadedEntry[]): LoadedEntry[] => all.filter((e) => isParticleEntry(e.name) && e.deployId);

export function writeEntryFile(esp: string, file: string, text: string): void {
  const dir = join(esp, ENTRIES_DIR);
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, file), text);
}

export function removeEntryFile(esp: string, file: string): void {
  rmSync(join(esp, ENTRIES_DIR, file), { force: true });
  fsyncDir(join(esp, ENTRIES_DIR));
}

/**
 * Pure: the file name and text that make `e` boot first with `generation`. An entry whose tries
 * ran out gets fresh tries under a new name (the old file is then removed; until then both exist,
 * and both boot the same deployment).
 */
export function planPromote(e: LoadedEntry, generation: number): { file: string; text: string; removeOld?: string } {
  const text = renderEntry(setKey(e.entry, "version", String(generation)));
  if (e.name.triesLeft !== 0) return { file: e.name.file, text };
  const base = e.name.id.slice(0, -ENTRY_SUFFIX.length);
  // Keep the original case of the file name: the id is lower-cased, the file may not be.
  const orig = e.name.file.slice(0, base.length);
  return { file: `${orig}+${DEFAULT_TRIES}${ENTRY_SUFFIX}`, text, removeOld: e.name.file };
}

/** Rewrites an entry's text under the same name (kargs), atomically. */
export function rewriteEntry(esp: string, e: LoadedEntry, entry: BlsEntry): void {
  writeEntryFile(esp, e.name.file, renderEntry(entry));
  syncGrub(esp);
}
