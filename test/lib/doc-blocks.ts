// The shell examples of docs/*.md, as the docs test runs them. A pure parser: markdown text in,
// commands out. Every fence must name its language, so that no command can hide in a fence the
// test does not look at; in a shell fence a line opening with `$ ` or `# ` (the root prompt) is a
// command, a trailing backslash continues it, and the lines after it are output the reader is
// shown: the test checks that each of them appears, in order, in what the command printed.
import { z } from "zod";

/** Fence languages whose commands the docs test runs. */
export const SHELL_LANGS: ReadonlySet<string> = new Set(["sh", "shell", "bash", "console"]);

export const DocCommand = z.object({
  /** 1-based line of the prompt in the markdown file. */
  line: z.number().int().positive(),
  /** The command without its prompt, continuation lines joined with one space. */
  text: z.string().min(1),
  /** The output lines shown after it (blank lines and `...` elisions dropped). */
  expect: z.array(z.string()),
});
export type DocCommand = z.infer<typeof DocCommand>;

export const DocFence = z.object({
  line: z.number().int().positive(),
  lang: z.string(),
  /** Only for shell fences. */
  commands: z.array(DocCommand),
  /** The fence's lines, for checks on non-shell fences. */
  body: z.array(z.string()),
});
export type DocFence = z.infer<typeof DocFence>;

const FENCE = /^(\s*)(```+|~~~+)\s*([^\s`{]*)/;
const PROMPT = /^[$#] /;
const ELISION = /^\s*(\.\.\.|…)\s*$/;

/** The fences of a markdown document, in order. Throws on a fence without a language, an unclosed
 *  fence, or a shell fence with text before its first prompt (it would never run). */
export function parseDocFences(markdown: string, name = "document"): DocFence[] {
  const lines = markdown.split("\n");
  const fences: DocFence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const marker = open[2]!;
    const lang = open[3]!.toLowerCase();
    if (!lang) throw new Error(`${name}:${i + 1}: a fence without a language; say \`\`\`sh for commands the test runs, \`\`\`text for anything else`);
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.trim().startsWith(marker); i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`${name}:${start + 1}: fence not closed`);
    const commands = SHELL_LANGS.has(lang) ? parseShellBody(body, start + 2, name) : [];
    fences.push({ line: start + 1, lang, commands, body });
  }
  return fences;
}

/** Commands and their shown output; `firstLine` is the 1-based line of body[0]. */
export function parseShellBody(body: readonly string[], firstLine: number, name = "document"): DocCommand[] {
  const out: DocCommand[] = [];
  let cur: DocCommand | undefined;
  for (let k = 0; k < body.length; k++) {
    const line = body[k]!;
    if (PROMPT.test(line)) {
      let text = line.slice(2).trim();
      const at = firstLine + k;
      while (text.endsWith("\\")) {
        k++;
        if (k >= body.length) throw new Error(`${name}:${at}: the command ends in a backslash with nothing after it`);
        text = `${text.slice(0, -1).trimEnd()} ${body[k]!.trim()}`;
      }
      if (!text) throw new Error(`${name}:${at}: a prompt without a command`);
      cur = { line: at, text, expect: [] };
      out.push(cur);
    } else if (line.trim() === "" || ELISION.test(line)) {
      continue;
    } else if (!cur) {
      throw new Error(`${name}:${firstLine + k}: "${line.trim()}" in a shell fence before any prompt; commands start with "$ " or "# "`);
    } else {
      cur.expect.push(line.trim());
    }
  }
  return out;
}

/** `text` with each <PLACEHOLDER> of `table` replaced; throws on one the table lacks. */
export function substitute(text: string, table: Readonly<Record<string, string>>, where: string): string {
  return text.replace(/<([A-Z][A-Z0-9-]*)>/g, (m, key: string) => {
    const v = table[key];
    if (v === undefined) throw new Error(`${where}: placeholder ${m} has no test value (add it to the docs test's table)`);
    return v;
  });
}

const squash = (s: string) => s.trim().replace(/\s+/g, " ");
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A shown output line as a pattern: placeholders of `table` are their values, any other <NAME>
 *  stands for some non-empty text (an id or digest that differs per run), spacing is loose. */
export function outputPattern(shown: string, table: Readonly<Record<string, string>>): RegExp {
  const parts = squash(shown).split(/(<[A-Z][A-Z0-9-]*>)/);
  const re = parts.map((p) => {
    const m = /^<([A-Z][A-Z0-9-]*)>$/.exec(p);
    if (!m) return escapeRe(p).replace(/ /g, "\\s+");
    const v = table[m[1]!];
    return v === undefined ? "\\S.*?" : escapeRe(v);
  });
  return new RegExp(`^${re.join("")}$`);
}

/** The shown lines not found, in order, among the printed ones; empty when all are there. */
export function missingOutput(shown: readonly string[], printed: string, table: Readonly<Record<string, string>>): string[] {
  const lines = printed.split("\n").map(squash);
  let from = 0;
  const missing: string[] = [];
  for (const s of shown) {
    const re = outputPattern(s, table);
    const at = lines.findIndex((l, i) => i >= from && re.test(l));
    if (at < 0) missing.push(s);
    else from = at + 1;
  }
  return missing;
}
