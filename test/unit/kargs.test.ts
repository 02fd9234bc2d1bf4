import { describe, expect, it } from "vitest";
import { appendArg, argKey, getArg, removeArg, replaceArg, splitCmdline } from "../../runtime/src/bls/kargs.ts";
import { editKargs } from "../../runtime/src/commands/kargs.ts";

describe("splitCmdline (kernel quoting: double quotes, no escapes)", () => {
  it.each([
    ["", []],
    ["  a  b\tc\n", ["a", "b", "c"]],
    ['a="b c" d', ['a="b c"', "d"]],
    ['"quoted whole" x', ['"quoted whole"', "x"]],
    ['dyndbg="file a.c +p"', ['dyndbg="file a.c +p"']],
    ['a=""', ['a=""']],
    ['unterminated="x y', ['unterminated="x y']],
  ])("%j", (s, want) => expect(splitCmdline(s)).toEqual(want));
});

describe("argument edits", () => {
  const base = ["root=UUID=1", "rw", "console=tty0", "console=ttyS0", "quiet"];
  it.each([
    ["replace first, drop later ones", replaceArg(base, "console=hvc0"), ["root=UUID=1", "rw", "console=hvc0", "quiet"]],
    ["replace appends when absent", replaceArg(base, "loglevel=7"), [...base, "loglevel=7"]],
    ["replace a bare flag", replaceArg(["a", "quiet"], "quiet"), ["a", "quiet"]],
    ["append a repeatable arg", appendArg(base, "console=hvc0"), [...base, "console=hvc0"]],
    ["append is idempotent", appendArg(base, "quiet"), base],
    ["remove one exact value", removeArg(base, "console=tty0"), ["root=UUID=1", "rw", "console=ttyS0", "quiet"]],
    ["remove all of a name with NAME=", removeArg(base, "console="), ["root=UUID=1", "rw", "quiet"]],
    ["remove a flag", removeArg(base, "quiet"), ["root=UUID=1", "rw", "console=tty0", "console=ttyS0"]],
    ["remove what is absent", removeArg(base, "splash"), base],
    ["dash and underscore are one name", replaceArg(["rd.shell=0"], "rd.shell=1"), ["rd.shell=1"]],
  ])("%s", (_n, got, want) => expect(got).toEqual(want));

  it.each([
    ["a-b=1", "a_b"],
    ['"x=y"', "x"],
    ["flag", "flag"],
  ])("argKey(%s)", (a, k) => expect(argKey(a)).toBe(k));

  it("getArg takes the last value and strips quotes", () => {
    expect(getArg(["p.deploy=1", "x", 'p.deploy="2"'], "p.deploy")).toBe("2");
    expect(getArg(["x"], "p.deploy")).toBeUndefined();
  });

  it("particle kargs: delete then append, protected arguments refused", () => {
    expect(editKargs(base, ["loglevel=3"], ["quiet"])).toEqual(["root=UUID=1", "rw", "console=tty0", "console=ttyS0", "loglevel=3"]);
    expect(() => editKargs(base, ["root=/dev/sda2"], [])).toThrow(/root= is set by particle/);
    expect(() => editKargs(base, [], ["particle.image="])).toThrow(/particle.image= is set by particle/);
  });
});
