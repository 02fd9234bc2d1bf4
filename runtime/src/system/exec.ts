// The one way to run an external program. Failures carry the command line and the tail of its
// stderr, so an error names what was run and what it said (as bootc's helper does).
import { execa, type Options } from "execa";

export class CommandError extends Error {}

const tail = (s: string, lines = 15) => s.trim().split("\n").slice(-lines).join("\n");

export async function run(cmd: string, args: readonly string[], opts: Options = {}): Promise<string> {
  try {
    const r = await execa(cmd, args, { stripFinalNewline: true, ...opts });
    return typeof r.stdout === "string" ? r.stdout : "";
  } catch (e: any) {
    if (e?.code === "ENOENT") throw new CommandError(`${cmd}: command not found (is it installed?)`);
    const stderr = typeof e?.stderr === "string" ? tail(e.stderr) : "";
    const what = e?.shortMessage ?? `${cmd} ${args.join(" ")} failed`;
    throw new CommandError(stderr ? `${what}\n${stderr}` : what);
  }
}
