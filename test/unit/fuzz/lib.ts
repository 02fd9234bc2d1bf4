// Shared pieces of the parser fuzz tests (fast-check under vitest).
//
// PARTICLE_FUZZ_RUNS  cases per property (default 10000, what CI runs; `make fuzz` runs 200000)
// PARTICLE_FUZZ_SEED  replays a run: fast-check prints the seed (and path) of any failure
// PARTICLE_FUZZ_CASE_MS  the time one case may take before it counts as a hang (default 5000)
//
// The rule every parser is held to: any input gives a result or an Error whose message names the
// input (the file, layer or argument, as the real callers pass it). Never another exception type
// (a TypeError or RangeError escaping from a Buffer read), never a case that runs away in time.
import fc from "fast-check";
import { expect } from "vitest";

const envInt = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`${name}=${v}: expected an integer`);
  return n;
};

export const RUNS = envInt("PARTICLE_FUZZ_RUNS", 10_000);
export const SEED = process.env.PARTICLE_FUZZ_SEED ? envInt("PARTICLE_FUZZ_SEED", 0) : undefined;
export const CASE_MS = envInt("PARTICLE_FUZZ_CASE_MS", 5000);

/** fast-check parameters: `runs` cases (a share of RUNS for properties whose cases spawn a program), the seed if one was given. */
export function params(runs = RUNS): fc.Parameters<unknown> {
  return { numRuns: Math.max(1, Math.round(runs)), ...(SEED !== undefined ? { seed: SEED } : {}) };
}

/** vitest's own timeout for a property of `runs` cases, at `perCaseMs` on average, with room for a slow machine. */
export const timeoutFor = (runs: number, perCaseMs: number): number => Math.max(120_000, runs * perCaseMs * 5);

/** The message must contain every one of `names` (the input as the caller names it). */
function checkError(e: unknown, names: readonly (string | RegExp)[]): Error {
  if (!(e instanceof Error) || e.constructor !== Error) {
    throw new Error(`expected a plain Error naming the input, got ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}\n${(e as Error)?.stack ?? ""}`);
  }
  for (const n of names) {
    const ok = typeof n === "string" ? e.message.includes(n) : n.test(e.message);
    if (!ok) throw new Error(`error does not name the input (${String(n)}): ${e.message}`);
  }
  return e;
}

function checkTime(t0: number, budget = CASE_MS): void {
  const ms = performance.now() - t0;
  if (ms > budget) throw new Error(`one case took ${ms.toFixed(0)} ms (budget ${budget} ms): a hang or super-linear work`);
}

/** Runs a synchronous parser on one input: its value, or the clean Error it threw. */
export function outcome<T>(fn: () => T, ...names: (string | RegExp)[]): { ok: true; value: T } | { ok: false; error: Error } {
  const t0 = performance.now();
  let r: { ok: true; value: T } | { ok: false; error: Error };
  try {
    r = { ok: true, value: fn() };
  } catch (e) {
    r = { ok: false, error: checkError(e, names) };
  }
  checkTime(t0);
  return r;
}

/** As outcome, for async work; cases that spawn a program get `budget` (a process start is slow on a loaded machine). */
export async function outcomeAsync<T>(fn: () => Promise<T>, names: (string | RegExp)[], budget = CASE_MS): Promise<{ ok: true; value: T } | { ok: false; error: Error }> {
  const t0 = performance.now();
  let r: { ok: true; value: T } | { ok: false; error: Error };
  try {
    r = { ok: true, value: await fn() };
  } catch (e) {
    r = { ok: false, error: checkError(e, names) };
  }
  checkTime(t0, budget);
  return r;
}

/** For a plain `it` regression case: the parser must refuse `fn`'s input with a clean Error matching `msg`. */
export function expectRefused(fn: () => unknown, msg: RegExp): void {
  const r = outcome(fn);
  expect(r.ok, "the input was accepted").toBe(false);
  if (!r.ok) expect(r.error.message).toMatch(msg);
}

/**
 * Strings with long runs (one case in four; the others short): a piece of `alphabet` repeated up to
 * 30,000 times between ordinary text, up to 120,000 characters. Quadratic regular expressions and
 * loops only show on inputs of this shape, and at this length they take seconds where linear code
 * takes milliseconds, so the per-case budget tells them apart even on a loaded machine.
 */
export function longRuns(alphabet: fc.Arbitrary<string>, around: fc.Arbitrary<string> = fc.string({ maxLength: 20 })): fc.Arbitrary<string> {
  const long = fc
    .tuple(around, fc.array(fc.tuple(fc.string({ unit: alphabet, minLength: 1, maxLength: 2 }), fc.integer({ min: 1, max: 30_000 })), { minLength: 1, maxLength: 2 }), around)
    .map(([a, runs, b]) => a + runs.map(([p, n]) => p.repeat(n)).join("") + b);
  return fc.oneof({ weight: 3, arbitrary: fc.string({ unit: alphabet, maxLength: 40 }) }, { weight: 1, arbitrary: long });
}

/** Byte edits that turn a valid input into a nearly valid one: bit flips, stores, truncation, cut-outs, insertions, huge numbers. */
export type Mutation =
  | { k: "flip"; at: number; bit: number }
  | { k: "set"; at: number; v: number }
  | { k: "cut"; at: number }
  | { k: "del"; at: number; n: number }
  | { k: "ins"; at: number; b: Uint8Array }
  | { k: "big"; at: number; width: 2 | 4 | 8; v: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat(7) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("set" as const), at: fc.nat(), v: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x20, 0x30, 0x2f) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("cut" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("del" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 600 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("ins" as const), at: fc.nat(), b: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("big" as const), at: fc.nat(), width: fc.constantFrom(2 as const, 4 as const, 8 as const), v: fc.constantFrom(0xffffffff, 0x7fffffff, 0x10000, 0xffff, 0x1000, 4097, 0) }) },
);

/** Applies mutations in order; positions wrap around the current length. */
export function mutate(input: Uint8Array, ms: readonly Mutation[], align = 1): Buffer {
  let b = Buffer.from(input);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.k) {
      case "flip": b[at] = b[at]! ^ (1 << m.bit); break;
      case "set": b[at] = m.v; break;
      case "cut": b = b.subarray(0, at); break;
      case "del": b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]); break;
      case "ins": b = Buffer.concat([b.subarray(0, at), Buffer.from(m.b), b.subarray(at)]); break;
      case "big": {
        const p = at - (at % Math.max(align, m.width));
        if (p + m.width > b.length) break;
        if (m.width === 2) b.writeUInt16LE(m.v & 0xffff, p);
        else if (m.width === 4) b.writeUInt32LE(m.v >>> 0, p);
        else b.writeBigUInt64LE(BigInt(m.v) * 0x100000001n, p);
        break;
      }
    }
  }
  return b;
}
