// Fuzzing the OCI index, manifest and config readers: arbitrary text and JSON, valid documents with
// fields changed, and whole layouts on disk read by readImage (blobs named by their digests, so
// the schema checks are reached, not just the digest check).
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageConfig, ImageIndex, ImageManifest, MEDIA, parseJson } from "../../../runtime/src/oci/schema.ts";
import { readImage, REF_NAME } from "../../../runtime/src/oci/layout.ts";
import { outcome, params, RUNS, timeoutFor } from "./lib.ts";

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const digest = fc.oneof({ weight: 5, arbitrary: hex64.map((h) => `sha256:${h}`) }, { weight: 1, arbitrary: fc.constantFrom("sha256:../../etc", "sha512:00", "", "sha256:" + "A".repeat(64)) });
const descriptor = fc.record({
  mediaType: fc.constantFrom(MEDIA.manifest, MEDIA.index, MEDIA.config, "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar", "text/plain"),
  digest,
  size: fc.oneof(fc.nat(), fc.constantFrom(-1, 1.5, 2 ** 64)),
  annotations: fc.option(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 2 }), { nil: undefined }),
}, { requiredKeys: ["mediaType", "digest", "size"] });

/** Replaces values at random places of a JSON value (a near miss of the schema). */
function perturb(v: unknown, picks: readonly number[], repl: readonly unknown[], i = { n: 0 }): unknown {
  const k = i.n++;
  const hit = picks.indexOf(k);
  if (hit >= 0) return repl[hit];
  if (Array.isArray(v)) return v.map((x) => perturb(x, picks, repl, i));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([a, b]) => [a, perturb(b, picks, repl, i)]));
  return v;
}
const nearMiss = <T>(doc: fc.Arbitrary<T>) =>
  fc.tuple(doc, fc.array(fc.nat(30), { maxLength: 3 }), fc.array(fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, -1, "", [], {}, "__proto__", 2 ** 53)), { minLength: 3, maxLength: 3 }))
    .map(([d, picks, repl]) => perturb(d, picks, repl));

const indexDoc = fc.record({ schemaVersion: fc.constant(2), manifests: fc.array(descriptor, { maxLength: 3 }) });
const manifestDoc = fc.record({ schemaVersion: fc.constant(2), mediaType: fc.constant(MEDIA.manifest), config: descriptor, layers: fc.array(descriptor, { maxLength: 3 }) });
const configDoc = fc.record({ architecture: fc.constant("amd64"), os: fc.constant("linux"), config: fc.record({ Labels: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), { nil: null }) }), rootfs: fc.record({ type: fc.constant("layers"), diff_ids: fc.array(digest, { maxLength: 3 }) }) });

/** Text a blob may hold: garbage, any JSON, a valid document, a near miss, deeply nested arrays. */
const text = (doc: fc.Arbitrary<unknown>) =>
  fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.json({ maxDepth: 3 }),
    doc.map((d) => JSON.stringify(d)),
    nearMiss(doc).map((d) => JSON.stringify(d)),
    fc.integer({ min: 1, max: 3000 }).map((n) => "[".repeat(n) + "]".repeat(n)),
    fc.tuple(doc, fc.nat()).map(([d, cut]) => { const s = JSON.stringify(d); return s.slice(0, cut % (s.length + 1)); }),
  );

describe("OCI JSON documents", () => {
  const schemas = [["index.json", ImageIndex, indexDoc], ["manifest", ImageManifest, manifestDoc], ["config", ImageConfig, configDoc]] as const;
  for (const [name, schema, doc] of schemas) {
    it(`${name}: a document or an error naming the blob (${RUNS} cases)`, () => {
      fc.assert(
        fc.property(text(doc), (t) => {
          const r = outcome(() => parseJson(schema as any, t, `OCI layout /l: ${name}`), /^OCI layout \/l: /);
          if (r.ok) expect(schema.safeParse(JSON.parse(t)).success).toBe(true);
        }),
        params(),
      );
    }, timeoutFor(RUNS, 2));
  }
});

describe("OCI layouts on disk (readImage)", () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), "fuzz-oci-")); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const sha = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;
  let seq = 0;

  // Each case writes a small layout; the documents themselves are fuzzed in memory above at full count.
  const runs = Math.max(100, RUNS / 20);
  it(`index → manifest → config: an image whose layers match its config, or an error naming the layout (${Math.round(runs)} cases)`, () => {
    fc.assert(
      fc.property(text(configDoc), text(manifestDoc), fc.option(text(indexDoc), { nil: undefined }), fc.boolean(), (configText, manifestText, indexText, wrongDigest) => {
        const l = join(dir, String(seq++));
        mkdirSync(join(l, "blobs", "sha256"), { recursive: true });
        const blob = (s: string) => { writeFileSync(join(l, "blobs", "sha256", sha(s).slice(7)), s); return sha(s); };
        const cfg = blob(configText);
        // A manifest that points at the config just written, when the fuzzed one parses as an object.
        let m = manifestText;
        try {
          const o = JSON.parse(manifestText);
          if (o && typeof o === "object" && o.config && typeof o.config === "object") { o.config.digest = cfg; m = JSON.stringify(o); }
        } catch { /* not JSON: stays as it is */ }
        const md = blob(m);
        const index = indexText ?? JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MEDIA.manifest, digest: wrongDigest ? sha(m + " ") : md, size: m.length, annotations: { [REF_NAME]: "v1" } }] });
        writeFileSync(join(l, "index.json"), index);
        const r = outcome(() => readImage(l, indexText === undefined ? "v1" : undefined, "amd64"), `OCI layout ${l}`);
        if (r.ok) {
          expect(r.value.layers.length).toBe(r.value.config.rootfs.diff_ids.length);
          for (const x of r.value.layers) expect(x.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
        }
        rmSync(l, { recursive: true, force: true });
      }),
      params(runs),
    );
  }, timeoutFor(runs, 10));
});

describe("regressions", () => {
  it("a manifest blob missing from the layout is refused naming the layout, not only the digest (found by the layout property)", () => {
    const l = mkdtempSync(join(tmpdir(), "fuzz-oci-reg-"));
    try {
      const d = `sha256:${"ad".repeat(32)}`;
      writeFileSync(join(l, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MEDIA.manifest, digest: d, size: 5, annotations: { [REF_NAME]: "v1" } }] }));
      const r = outcome(() => readImage(l, "v1", "amd64"));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.message).toMatch(new RegExp(`^OCI layout ${l}: manifest ${d}: cannot read blob: ENOENT`));
    } finally {
      rmSync(l, { recursive: true, force: true });
    }
  });

  it('a config label named "__proto__" is refused by name, not dropped', () => {
    const t = '{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"__proto__":"x"}}}';
    const r = outcome(() => parseJson(ImageConfig, t, "OCI layout /l: config"));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toBe('OCI layout /l: config: a key "__proto__" cannot be kept (it is not an ordinary name in JavaScript)');
  });
});
