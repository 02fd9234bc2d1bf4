// BLS type 1 entries (https://uapi-group.org/specifications/specs/boot_loader_specification/) kept
// as their lines: a key we do not know, a comment or odd spacing written by someone else survives a
// parse/render round trip untouched. Only the lines we change are re-rendered.
import { z } from "zod";

export type EntryLine =
  | { kind: "kv"; key: string; value: string; raw: string }
  | { kind: "other"; raw: string };

export interface BlsEntry {
  lines: EntryLine[];
}

/** Keys systemd-boot reads; written in this order so entries from us look alike. */
export const KEY_ORDER = ["title", "version", "sort-key", "machine-id", "linux", "initrd", "options"] as const;

// The spec: "key, whitespace, value"; the value runs to the end of the line. Split by hand: the
// one-pattern form (key, blanks, lazy value, blanks, end) backtracks quadratically on a line of
// many blanks, and the ESP holds entries written by others.
const KEY = /^[A-Za-z][A-Za-z0-9_-]*(?=[ \t])/;
const isBlank = (c: string | undefined) => c === " " || c === "\t";

function keyValue(t: string): { key: string; value: string } | undefined {
  const m = KEY.exec(t);
  if (!m) return undefined;
  const rest = t.slice(m[0].length);
  // Kept from the pattern this replaces: a value with \r, U+2028 or U+2029 is no key line.
  if (/[\r\u2028\u2029]/.test(rest)) return undefined;
  let a = 0;
  let b = rest.length;
  while (a < b && isBlank(rest[a])) a++;
  while (b > a && isBlank(rest[b - 1])) b--;
  return { key: m[0], value: rest.slice(a, b) };
}

export function parseEntry(text: string): BlsEntry {
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  if (body === "") return { lines: [] };
  return {
    lines: body.split("\n").map((raw): EntryLine => {
      const t = raw.trimStart();
      const kv = t.startsWith("#") ? undefined : keyValue(t);
      return kv ? { kind: "kv", ...kv, raw } : { kind: "other", raw };
    }),
  };
}

export function renderEntry(e: BlsEntry): string {
  return e.lines.map((l) => l.raw).join("\n") + "\n";
}

/** The last value of a single-valued key (systemd-boot lets a later line win), or undefined. */
export function getKey(e: BlsEntry, key: string): string | undefined {
  let v: string | undefined;
  for (const l of e.lines) if (l.kind === "kv" && l.key === key) v = l.value;
  return v;
}

/** All values of a repeatable key (initrd). */
export function getAll(e: BlsEntry, key: string): string[] {
  return e.lines.flatMap((l) => (l.kind === "kv" && l.key === key ? [l.value] : []));
}

/** The kernel command line: systemd-boot joins every `options` line with a space. */
export function getOptions(e: BlsEntry): string {
  return getAll(e, "options").join(" ");
}

const kvLine = (key: string, value: string): EntryLine => ({ kind: "kv", key, value, raw: `${key.padEnd(10)} ${value}` });

/**
 * Sets a single-valued key: replaces its first line (and drops later duplicates, which would
 * otherwise win), or inserts it in KEY_ORDER position. Other lines keep their bytes.
 */
export function setKey(e: BlsEntry, key: string, value: string): BlsEntry {
  let seen = false;
  const lines: EntryLine[] = [];
  for (const l of e.lines) {
    if (l.kind === "kv" && l.key === key) {
      if (!seen) lines.push(kvLine(key, value));
      seen = true;
    } else lines.push(l);
  }
  if (!seen) {
    const rank = KEY_ORDER.indexOf(key as (typeof KEY_ORDER)[number]);
    let at = lines.length;
    if (rank >= 0) {
      // Before the first known key that should come after this one.
      const i = lines.findIndex((l) => l.kind === "kv" && KEY_ORDER.indexOf(l.key as any) > rank);
      if (i >= 0) at = i;
    }
    lines.splice(at, 0, kvLine(key, value));
  }
  return { lines };
}

/** Replaces all `options` lines by one line with `cmdline`, where the first one was. */
export function setOptions(e: BlsEntry, cmdline: string): BlsEntry {
  const first = firstIndex(e, "options");
  const lines = e.lines.filter((l, i) => !(l.kind === "kv" && l.key === "options" && i !== first));
  return setKey({ lines }, "options", cmdline);
}

function firstIndex(e: BlsEntry, key: string): number {
  return e.lines.findIndex((l) => l.kind === "kv" && l.key === key);
}

export const EntryFields = z.object({
  title: z.string().min(1),
  version: z.string().min(1),
  sortKey: z.string().min(1),
  linux: z.string().startsWith("/"),
  initrd: z.array(z.string().startsWith("/")).min(1),
  options: z.string(),
  /** Comment lines written at the top (without the leading "# "). */
  comments: z.array(z.string()).default([]),
});
export type EntryFields = z.input<typeof EntryFields>;

/** A fresh entry with aligned keys, like kernel-install's 90-loaderentry writes. */
export function newEntry(fields: EntryFields): BlsEntry {
  const f = EntryFields.parse(fields);
  const lines: EntryLine[] = f.comments.map((c) => ({ kind: "other", raw: `# ${c}` }));
  lines.push(kvLine("title", f.title), kvLine("version", f.version), kvLine("sort-key", f.sortKey), kvLine("linux", f.linux));
  for (const i of f.initrd) lines.push(kvLine("initrd", i));
  lines.push(kvLine("options", f.options));
  return { lines };
}
