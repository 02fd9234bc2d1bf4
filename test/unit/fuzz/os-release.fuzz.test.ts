// Fuzzing the os-release reader (a file from the image being staged): any text gives a version or
// none, quickly; a version written in any of the usual spellings is read back.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseOsRelease } from "../../../runtime/src/store/os-release.ts";
import { fileSafe } from "../../../runtime/src/bls/filename.ts";
import { longRuns, outcome, params, RUNS, timeoutFor } from "./lib.ts";

const version = fc.stringMatching(/^[0-9A-Za-z][0-9A-Za-z._ ~+-]{0,15}$/).filter((v) => v.trim() === v);
const otherLine = fc.oneof(
  fc.constantFrom("NAME=\"Ubuntu\"", "# comment", "", "ID=ubuntu", "PRETTY_NAME='Ubuntu 24.04 LTS'", "HOME_URL=https://x/"),
  fc.string({ maxLength: 30 }).filter((l) => !/^\s*(VERSION_ID|VERSION|BUILD_ID)=/.test(l)),
);

describe("os-release fuzz", () => {
  it(`VERSION_ID in every quoting is read back, whatever lines surround it (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(version, fc.constantFrom("", "\"", "'"), fc.array(otherLine, { maxLength: 5 }), fc.array(otherLine, { maxLength: 5 }), fc.constantFrom("\n", "\r\n"), (v, q, before, after, nl) => {
        const text = [...before, `VERSION_ID=${q}${v}${q}`, ...after].join(nl);
        expect(outcome(() => parseOsRelease(text)).ok && parseOsRelease(text)).toBe(v);
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));

  it(`any text: a version or none, never an exception or a slow case; the entry file name made from it stays one plain name (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 100 }), longRuns(fc.constantFrom("=", "\"", "'", " ", "A", "_", "\n")).map((s) => `VERSION_ID=${s}`)), (text) => {
        const r = outcome(() => parseOsRelease(text));
        if (r.ok && r.value !== undefined) {
          expect(r.value.includes("\n")).toBe(false);
          expect(fileSafe(r.value)).toMatch(/^[A-Za-z0-9~][A-Za-z0-9._~]*$/);
        }
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));
});
