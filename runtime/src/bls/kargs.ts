// Kernel command-line arguments as the kernel splits them: whitespace separates arguments except
// inside double quotes, and there are no escapes (a quote just toggles quoting, so `a="b c"` is one
// argument). The key of `name=value` is what precedes the first `=`; the kernel treats `-` and `_`
// in parameter names alike, and so do we when matching.

/** isspace() of the kernel's lib/ctype.c on ASCII; JavaScript's \s would also split at U+3000, U+2028, … */
const KERNEL_SPACE = /^[ \t\n\v\f\r]$/;

export function splitCmdline(cmdline: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  let has = false;
  for (const ch of cmdline) {
    if (ch === '"') { quoted = !quoted; cur += ch; has = true; continue; }
    if (!quoted && KERNEL_SPACE.test(ch)) {
      if (has) out.push(cur);
      cur = ""; has = false;
      continue;
    }
    cur += ch; has = true;
  }
  if (has) out.push(cur);
  return out;
}

export const joinCmdline = (args: readonly string[]): string => args.join(" ");

/** `name` of `name=value` (or the whole argument), with quotes removed and `-` read as `_`. */
export function argKey(arg: string): string {
  const eq = arg.indexOf("=");
  return (eq < 0 ? arg : arg.slice(0, eq)).replaceAll('"', "").replaceAll("-", "_");
}

const sameKey = (a: string, b: string) => argKey(a) === argKey(b);

/**
 * Sets `arg` (name or name=value): the first argument with the same name is replaced in place and
 * later ones removed; without one, `arg` is appended. `root=` must have one value, so replace,
 * never add a second.
 */
export function replaceArg(args: readonly string[], arg: string): string[] {
  const out: string[] = [];
  let done = false;
  for (const a of args) {
    if (!sameKey(a, arg)) out.push(a);
    else if (!done) { out.push(arg); done = true; }
  }
  if (!done) out.push(arg);
  return out;
}

/** Appends `arg` unless exactly this argument is already there (repeatable args like console=). */
export function appendArg(args: readonly string[], arg: string): string[] {
  return args.includes(arg) ? [...args] : [...args, arg];
}

/**
 * Removes `arg`: with a value (`quiet`, `console=ttyS0`) only that exact argument; with a bare
 * name followed by `=` (`console=`) every argument of that name.
 */
export function removeArg(args: readonly string[], arg: string): string[] {
  if (arg.endsWith("=")) return args.filter((a) => !sameKey(a, arg));
  return args.filter((a) => a !== arg && !(a.indexOf("=") < 0 && arg.indexOf("=") < 0 && sameKey(a, arg)));
}

/** The value of the last `name=` argument (the kernel and systemd let the last one win). */
export function getArg(args: readonly string[], name: string): string | undefined {
  let v: string | undefined;
  for (const a of args) {
    const eq = a.indexOf("=");
    if (eq >= 0 && sameKey(a, name)) v = a.slice(eq + 1).replace(/^"(.*)"$/, "$1");
  }
  return v;
}
