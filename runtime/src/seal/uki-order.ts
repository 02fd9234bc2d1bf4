// The boot order of sealed UKIs (Type #2 entries under EFI/Linux) and how to change it. A UKI's
// command line and os-release are signed, so its place in systemd-boot's order cannot be rewritten
// the way a Type #1 entry's generation is (bls/order.ts): systemd-boot sorts UKIs by IMAGE_ID (our
// sort-key, "particle") and IMAGE_VERSION, descending, with entries that have no tries left last.
// The only thing a machine may change is the file name, and with it the boot counter. So making a
// UKI the default renames every good UKI that sorts before it to `+0` (no tries left: skipped by
// the glob default, still in the menu), and gives the target fresh tries if it had none. loader.conf
// keeps its `particle-*` glob, so boot counting's fallback still walks down the same order.
// Pure: takes the directory listing, returns renames.
import { compareEntries, SORT_KEY, type Orderable } from "../bls/order.ts";
import { DEFAULT_TRIES } from "../bls/filename.ts";
import { UKI_PREFIX } from "./plan.ts";

export interface UkiName extends Orderable {
  /** IMAGE_VERSION as the file name carries it (seal/plan.ts ukiFileName). */
  version: string;
  /** The first 12 hex digits of the image digest the UKI pins. */
  digestPrefix: string;
  /** The name without the counter and `.efi`. */
  base: string;
}

const NAME = /^((particle-(.+))-([0-9a-f]{12}))(?:\+(\d+)(?:-(\d+))?)?\.efi$/i;

/** A particle UKI file name, or undefined for anything else under EFI/Linux. */
export function parseUkiName(file: string): UkiName | undefined {
  const m = NAME.exec(file);
  if (!m || !file.startsWith(UKI_PREFIX)) return undefined;
  const counted = m[5] !== undefined;
  return {
    name: {
      file,
      id: `${m[1]}.efi`.toLowerCase(),
      ...(counted ? { triesLeft: Number(m[5]), triesDone: m[6] === undefined ? 0 : Number(m[6]) } : {}),
    },
    sortKey: SORT_KEY,
    version: m[3]!,
    digestPrefix: m[4]!.toLowerCase(),
    base: m[1]!,
  };
}

/** The particle UKIs among `files`, in systemd-boot's order (the first is what `particle-*` picks). */
export function orderUkis(files: readonly string[]): UkiName[] {
  return files.flatMap((f) => parseUkiName(f) ?? []).sort(compareEntries);
}

export const pinsImage = (u: UkiName, imageDigest: string): boolean => imageDigest.toLowerCase().startsWith(u.digestPrefix);

export interface Rename {
  from: string;
  to: string;
}

const counted = (u: UkiName, left: number, done?: number) => `${u.base}+${left}${done ? `-${done}` : ""}.efi`;

/**
 * Renames (in this order) that make the UKI pinning `imageDigest` the first in boot order: the
 * target first (a UKI with no tries left gets DEFAULT_TRIES: it is being asked for again, and must
 * prove itself before it is blessed), then every good UKI ahead of it gets `+0` (keeping its tries
 * done). A crash between two renames leaves an order whose first entry is one that booted before.
 */
export function planUkiPromote(files: readonly string[], imageDigest: string): Rename[] {
  const ukis = orderUkis(files);
  const target = ukis.find((u) => pinsImage(u, imageDigest));
  if (!target) throw new Error(`no UKI under EFI/Linux pins image ${imageDigest}`);
  const out: Rename[] = [];
  let promoted = target;
  if (target.name.triesLeft === 0) {
    const to = counted(target, DEFAULT_TRIES);
    out.push({ from: target.name.file, to });
    promoted = parseUkiName(to)!;
  }
  for (const u of ukis) {
    if (u === target || u.name.triesLeft === 0) continue;
    if (compareEntries(u, promoted) < 0) out.push({ from: u.name.file, to: counted(u, 0, u.name.triesDone) });
  }
  return out;
}

/** After the renames: the file names under EFI/Linux (for checks and tests). */
export function applyRenames(files: readonly string[], renames: readonly Rename[]): string[] {
  let out = [...files];
  for (const r of renames) out = out.map((f) => (f === r.from ? r.to : f));
  return out;
}
