// Fuzzing the grubenv decoder: any bytes give the variables or an Error naming the file; variables
// we write read back exactly, and the block stays 1024 bytes (GRUB rewrites it in place).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeGrubEnv, ENV_SIGNATURE, ENV_SIZE, parseGrubEnv } from "../../../runtime/src/bootloader/grub-env.ts";
import { longRuns, mutate, mutationArb, outcome, params, RUNS, timeoutFor } from "./lib.ts";

const FILE = "/boot/efi/grub/particle.env";
const varName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/);
const value = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: fc.constantFrom("\\", "\n", "#", "=", "a", " "), maxLength: 20 }), fc.string({ unit: "grapheme", maxLength: 10 }));
const envArb = fc.dictionary(varName, value, { maxKeys: 6 }).map((o) => new Map(Object.entries(o)));

describe("grubenv fuzz", () => {
  it(`variables round-trip through a 1024-byte block, or are refused as too big (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(envArb, (env) => {
        const r = outcome(() => encodeGrubEnv(env), /^grubenv: /);
        if (!r.ok) { expect(r.error.message).toMatch(/do not fit/); return; }
        expect(r.value.length).toBe(ENV_SIZE);
        expect(parseGrubEnv(r.value, FILE)).toEqual(env);
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));

  it(`any bytes, with and without the signature, damaged blocks, long runs: variables or an error naming the file (${RUNS} cases)`, () => {
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 1100 }).map((b) => Buffer.from(b)),
      fc.string({ maxLength: 200 }).map((s) => Buffer.from(ENV_SIGNATURE + s)),
      longRuns(fc.constantFrom("\\", "\n", "#", "=", "a")).map((s) => Buffer.from(ENV_SIGNATURE + s)),
      fc.tuple(envArb, fc.array(mutationArb, { maxLength: 3 })).map(([env, ms]) => { try { return mutate(encodeGrubEnv(env), ms); } catch { return Buffer.alloc(0); } }),
    );
    fc.assert(
      fc.property(input, (b) => {
        const r = outcome(() => parseGrubEnv(b, FILE), FILE);
        if (r.ok) for (const [k, v] of r.value) { expect(k.length).toBeGreaterThan(0); expect(k.includes("=")).toBe(false); expect(typeof v).toBe("string"); }
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));
});

describe("regressions", () => {
  it("a block without the signature is refused naming the file it came from", () => {
    const r = outcome(() => parseGrubEnv(Buffer.from("boot_counter=1\n"), FILE));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toBe(`${FILE}: missing the '# GRUB Environment Block' signature`);
  });
});
