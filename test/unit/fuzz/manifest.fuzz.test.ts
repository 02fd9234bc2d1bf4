// Fuzzing deployment.json: any text gives a manifest or an Error naming the file; every valid
// manifest renders and parses back to itself.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseManifest, renderManifest, type Manifest } from "../../../runtime/src/manifest.ts";
import { mutate, mutationArb, outcome, params, RUNS, timeoutFor } from "./lib.ts";

const FILE = "/sysroot/particle/deploy/3/deployment.json";
const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
const id = fc.stringMatching(/^[0-9a-z][0-9a-z._-]{0,20}$/);
const str = fc.string({ unit: "grapheme", maxLength: 20 });
const manifestArb: fc.Arbitrary<Manifest> = fc.record({
  schema: fc.constant(1 as const),
  id,
  format: fc.constantFrom("composefs" as const, "erofs" as const, "squashfs" as const),
  imageDigest: hex,
  source: str,
  created: str,
  version: str,
  files: fc.nat(),
  bytes: fc.nat(),
  kernel: str,
  base: fc.record({ id, imageDigest: hex }),
  layered: fc.array(str, { maxLength: 3 }),
  oci: fc.record({ reference: str, sourceDigest: hex.map((h) => `sha256:${h}`), manifestDigest: hex.map((h) => `sha256:${h}`), created: str, labels: fc.dictionary(str.filter((k) => k !== "__proto__"), str, { maxKeys: 3 }), layers: fc.nat() }, { requiredKeys: ["reference", "sourceDigest", "manifestDigest", "labels", "layers"] }),
}, { requiredKeys: ["schema", "id", "format", "imageDigest", "source", "created", "files", "bytes"] });

describe("deployment.json fuzz", () => {
  it(`valid manifests render and parse back to themselves (${RUNS} cases)`, () => {
    fc.assert(fc.property(manifestArb, (m) => { expect(parseManifest(renderManifest(m), FILE)).toEqual(m); }), params());
  }, timeoutFor(RUNS, 1));

  it(`any text, damaged manifests, deep nesting: a manifest or an error naming the file (${RUNS} cases)`, () => {
    const text = fc.oneof(
      fc.string({ maxLength: 100 }),
      fc.json({ maxDepth: 3 }),
      fc.tuple(manifestArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 })).map(([m, ms]) => mutate(Buffer.from(renderManifest(m)), ms).toString("utf8")),
      fc.tuple(manifestArb, fc.constantFrom("schema", "id", "format", "imageDigest", "files", "bytes", "oci", "base"), fc.jsonValue({ maxDepth: 2 })).map(([m, k, v]) => JSON.stringify({ ...m, [k]: v })),
      fc.integer({ min: 1, max: 3000 }).map((n) => `{"oci":${"[".repeat(n)}${"]".repeat(n)}}`),
    );
    fc.assert(
      fc.property(text, (t) => {
        const r = outcome(() => parseManifest(t, FILE), `${FILE}: `);
        if (r.ok) expect(parseManifest(renderManifest(r.value), FILE)).toEqual(r.value);
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));
});

describe("regressions", () => {
  it('a label named "__proto__" is refused by name, not dropped without a word (found by the round trip)', () => {
    const m = { schema: 1, id: "0", format: "composefs", imageDigest: "a".repeat(64), source: "", created: "", files: 0, bytes: 0, oci: { reference: "", sourceDigest: `sha256:${"a".repeat(64)}`, manifestDigest: `sha256:${"a".repeat(64)}`, labels: {}, layers: 0 } };
    const text = JSON.stringify(m).replace('"labels":{}', '"labels":{"__proto__":""}');
    const r = outcome(() => parseManifest(text, FILE));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(new RegExp(`^${FILE}: a key "__proto__" cannot be kept`));
  });
});
