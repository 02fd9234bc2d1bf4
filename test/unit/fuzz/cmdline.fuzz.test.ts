// Fuzzing the kernel command line: particle-boot's parser (a plan, or an Error starting with the
// argument at fault) and the splitter shared with the boot entry editor, checked against a model
// of the kernel's own rule (lib/cmdline.c next_arg: isspace separates, a double quote toggles quoting).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCmdline } from "../../../boot/src/cmdline.ts";
import { appendArg, getArg, joinCmdline, removeArg, replaceArg, splitCmdline } from "../../../runtime/src/bls/kargs.ts";
import { longRuns, outcome, params, RUNS, timeoutFor } from "./lib.ts";

/** The kernel's isspace on ASCII (lib/ctype.c); its Latin-1 0xA0 would split a UTF-8 character, which no JS string models. */
const KSPACE = new Set([" ", "\t", "\n", "\v", "\f", "\r"]);
function kernelSplit(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && KSPACE.has(s[i]!)) i++;
    if (i >= s.length) break;
    let q = false;
    let j = i;
    for (; j < s.length; j++) {
      if (KSPACE.has(s[j]!) && !q) break;
      if (s[j] === '"') q = !q;
    }
    out.push(s.slice(i, j));
    i = j;
  }
  return out;
}

const cmdChars = fc.constantFrom("a", "b", "=", '"', " ", "\t", "\n", "\r", "\v", "\f", ".", "\u2028", "\u3000", "\ufeff", "\u00e9");
const anyCmdline = fc.oneof(
  fc.string({ unit: cmdChars, maxLength: 40 }),
  fc.string({ maxLength: 80 }),
  longRuns(fc.constantFrom(" ", '"', "=", "a")),
);

const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
const id = fc.stringMatching(/^[0-9a-z][0-9a-z._-]{0,10}$/);
const noise = fc.constantFrom("ro", "quiet", "root=/dev/vda2", 'console="ttyS0,115200"', "rd.shell=0", 'x="a b"', "particle", "overlayroot_cfgdisk=x");
const quoteStyle = fc.constantFrom("plain", "whole", "value");
const spell = (k: string, v: string, q: string) => (q === "whole" ? `"${k}=${v}"` : q === "value" ? `${k}="${v}"` : `${k}=${v}`);

describe("kernel command line fuzz", () => {
  it(`splitting matches the kernel's rule (${RUNS} cases)`, () => {
    fc.assert(fc.property(anyCmdline, (s) => { expect(outcome(() => splitCmdline(s)).ok && splitCmdline(s)).toEqual(kernelSplit(s)); }), params());
  }, timeoutFor(RUNS, 1));

  it(`particle-boot: a plan, or an Error that starts with the argument at fault (${RUNS} cases)`, () => {
    const withParticle = fc.tuple(anyCmdline, fc.constantFrom("particle.deploy", "particle.image", "particle.verity", "particle.other", "overlayroot"), fc.string({ unit: cmdChars, maxLength: 12 }), anyCmdline)
      .map(([a, k, v, b]) => `${a} ${k}=${v} ${b}`);
    fc.assert(
      fc.property(fc.oneof(anyCmdline, withParticle), (s) => {
        outcome(() => parseCmdline(s), /^(particle\.(deploy|image|verity|[^\s:=]*)|overlayroot)[=:]/);
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));

  it(`a boot entry's arguments in any order, quoting and company give back the plan (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(id, hex, fc.option(fc.constantFrom("require", "optional", "off"), { nil: undefined }), fc.array(noise, { maxLength: 4 }), fc.array(quoteStyle, { minLength: 3, maxLength: 3 }), fc.nat(), (deploy, image, verity, extra, qs, rot) => {
        const args = [spell("particle.deploy", deploy, qs[0]!), spell("particle.image", image, qs[1]!), ...(verity ? [spell("particle.verity", verity, qs[2]!)] : []), ...extra];
        const n = rot % args.length;
        const line = joinCmdline([...args.slice(n), ...args.slice(0, n)]);
        expect(parseCmdline(line)).toEqual({ deploy, image, ...(verity ? { verity } : {}) });
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));

  it(`editing arguments keeps a line that splits back into the same arguments (${RUNS} cases)`, () => {
    const arg = fc.oneof(noise, fc.stringMatching(/^[a-z_.-]{1,6}(=[a-z0-9,]{0,6})?$/));
    fc.assert(
      fc.property(fc.array(arg, { maxLength: 6 }), arg, arg, arg, (args, r, a, d) => {
        const edited = removeArg(appendArg(replaceArg(args, r), a), d);
        expect(splitCmdline(joinCmdline(edited))).toEqual(edited);
        const k = r.split("=")[0]!;
        const touches = (x: string) => x.split("=")[0]!.replaceAll("-", "_") === k.replaceAll("-", "_");
        if (r.includes("=") && !touches(a) && !touches(d)) expect(getArg(edited, k)).toBe(r.slice(k.length + 1).replace(/^"(.*)"$/, "$1"));
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));
});

describe("regressions", () => {
  it("U+3000 and other non-ASCII spaces do not split an argument: the kernel splits on ASCII whitespace only (found by the kernel-model property)", () => {
    expect(splitCmdline("a\u3000b c\u2028d\te")).toEqual(["a\u3000b", "c\u2028d", "e"]);
    // Before, "1" was taken as the deployment; the kernel hands particle.deploy the whole "1\u3000x".
    const r = outcome(() => parseCmdline(`particle.deploy=1\u3000x particle.image=${"a".repeat(64)}`));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toBe("particle.deploy=1\u3000x: invalid, expected a deployment id such as 1 or 2-ab12");
  });
});
