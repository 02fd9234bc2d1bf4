// The docs test's markdown parser: which lines are commands, which are shown output, and what is refused.
import { describe, expect, it } from "vitest";
import { missingOutput, outputPattern, parseDocFences, substitute } from "../lib/doc-blocks.ts";
import { particleUsageProblems } from "../lib/cli-usage.ts";

const md = (...lines: string[]) => lines.join("\n");

describe("parseDocFences", () => {
  it.each([
    ["a root prompt and its output", md("```sh", "# particle status", "● Booted: deployment 1", "```"),
      [{ line: 2, text: "particle status", expect: ["● Booted: deployment 1"] }]],
    ["a user prompt, blank lines and elisions dropped", md("```console", "$ particle list", "", "...", "1 composefs", "…", "```"),
      [{ line: 2, text: "particle list", expect: ["1 composefs"] }]],
    ["a continued command", md("```sh", "# particle install --to-disk <DISK> \\", "    --source dir:<TREE>", "```"),
      [{ line: 2, text: "particle install --to-disk <DISK> --source dir:<TREE>", expect: [] }]],
    ["two commands", md("```bash", "# a", "out a", "# b", "```"),
      [{ line: 2, text: "a", expect: ["out a"] }, { line: 4, text: "b", expect: [] }]],
  ])("%s", (_name, text, want) => {
    const f = parseDocFences(text);
    expect(f).toHaveLength(1);
    expect(f[0]!.commands).toEqual(want);
  });

  it("keeps other fences with their body and no commands", () => {
    const f = parseDocFences(md("intro", "```text", "# reboot", "```", "```sh", "# true", "```"));
    expect(f.map((x) => [x.line, x.lang, x.commands.length, x.body])).toEqual([[2, "text", 0, ["# reboot"]], [5, "sh", 1, ["# true"]]]);
  });

  it.each([
    ["a fence without a language", md("```", "# rm -rf /", "```"), /doc:1: a fence without a language/],
    ["an unclosed fence", md("```sh", "# true"), /doc:1: fence not closed/],
    ["text before the first prompt", md("```sh", "particle status", "```"), /doc:2: "particle status" in a shell fence before any prompt/],
    ["a dangling backslash", md("```sh", "# particle \\", "```"), /doc:2: the command ends in a backslash/],
    ["an empty prompt", md("```sh", "$  ", "```"), /doc:2: a prompt without a command/],
  ])("refuses %s", (_name, text, err) => {
    expect(() => parseDocFences(text, "doc")).toThrow(err);
  });
});

describe("substitute", () => {
  it("replaces placeholders from the table", () => {
    expect(substitute("particle install --to-disk <DISK> --source dir:<TREE>", { DISK: "/root/d.img", TREE: "/srv/t" }, "x"))
      .toBe("particle install --to-disk /root/d.img --source dir:/srv/t");
  });
  it("names a placeholder the table lacks", () => {
    expect(() => substitute("particle kargs --append <ARG>", {}, "daily.md:7")).toThrow("daily.md:7: placeholder <ARG> has no test value");
  });
  it("leaves shell redirections and lower-case brackets alone", () => {
    expect(substitute("cat <file> < in", {}, "x")).toBe("cat <file> < in");
  });
});

describe("output checks", () => {
  const table = { DISK: "/root/disk.img" };
  it.each([
    ["literal text, loose spacing", "● Booted:  deployment 1", "  ● Booted: deployment 1 ", true],
    ["a table placeholder is its value", "installed to <DISK>", "installed to /root/disk.img", true],
    ["a table placeholder is not a wildcard", "installed to <DISK>", "installed to /dev/sda", false],
    ["another placeholder is any text", "deployment <ID> boots next", "deployment 12 boots next", true],
    ["another placeholder is not empty", "deployment <ID> boots next", "deployment  boots next", false],
    ["regex characters are literal", "a (b) [c]*", "a (b) [c]*", true],
    ["the whole line must match", "deployment 1", "deployment 12", false],
  ])("%s", (_name, shown, line, ok) => {
    expect(outputPattern(shown, table).test(line.trim().replace(/\s+/g, " "))).toBe(ok);
  });

  it("finds shown lines in order and reports the rest", () => {
    const printed = "one\ntwo\nthree\n";
    expect(missingOutput(["one", "three"], printed, {})).toEqual([]);
    expect(missingOutput(["three", "one"], printed, {})).toEqual(["one"]);
    expect(missingOutput(["four"], printed, {})).toEqual(["four"]);
  });
});

describe("particle lines the docs show without running them", () => {
  const commands = [
    { name: "layer <action> [...packages]", options: [["--from <id>", "…"], ["--json", "…"]] as const },
    { name: "stage <source>", options: [["--format <format>", "…"]] as const },
    { name: "status" },
  ];
  it.each([
    ["a known command and option", "particle layer install htop --from 2", []],
    ["an option with =", "particle layer list --json=true", []],
    ["--help always", "particle status --help", []],
    ["particle-stage is stage", "particle-stage dir:/x --format erofs", []],
    ["not particle at all", "journalctl -b -u particle-root.service", []],
    ["an unknown command", "particle upgrades", ["particle upgrades: no such command"]],
    ["an unknown option", "particle layer install htop --onto 3 --yes", ["particle layer: no option --onto", "particle layer: no option --yes"]],
  ])("%s", (_name, line, want) => {
    expect(particleUsageProblems(line, commands)).toEqual(want);
  });
});
