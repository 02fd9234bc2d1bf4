// A `particle …` line that a document shows but cannot run (in a ```text fence: layering without a
// network, commands in the initramfs) is still checked against the command table: the command must
// exist and every --option must be one it declares. Renaming an option then fails the docs test.

/** What this check needs of runtime/src/cli.ts's COMMANDS. */
export interface CommandShape {
  name: string;
  options?: ReadonlyArray<readonly [flags: string, ...unknown[]]>;
}

/** The long option names a spec declares: "--append <arg>" → "append". */
function optionNames(spec: CommandShape): Set<string> {
  const names = new Set(["help"]);
  for (const [flags] of spec.options ?? []) for (const m of flags.matchAll(/--([a-z][a-z0-9-]*)/g)) names.add(m[1]!);
  return names;
}

/** Problems with one `particle ARGS…` command line (without the prompt); empty when it parses. */
export function particleUsageProblems(line: string, commands: readonly CommandShape[]): string[] {
  const words = line.trim().split(/\s+/);
  if (words[0] !== "particle" && words[0] !== "particle-stage") return [];
  const args = words[0] === "particle-stage" ? ["stage", ...words.slice(1)] : words.slice(1);
  const name = args[0];
  const spec = commands.find((c) => c.name.split(" ")[0] === name);
  if (!spec) return [`particle ${name ?? ""}: no such command`];
  const known = optionNames(spec);
  return args.slice(1).filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0]!)
    .filter((o) => !known.has(o)).map((o) => `particle ${name}: no option --${o}`);
}
