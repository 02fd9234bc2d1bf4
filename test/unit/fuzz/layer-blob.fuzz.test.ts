// Fuzzing the two code paths that take a tar stream from outside and touch the disk:
//   - unpackLayer (OCI layers): blob → digest check → gzip/zstd/none → tar reader → layer builder,
//     with file contents going into the object sink. It writes nothing but numbered temp objects:
//     names from the archive never reach the filesystem. Checked against a real temp sysroot.
//   - materialize (`particle stage tar:…`): GNU tar extracts into the work directory. Hostile
//     archives ("..", absolute symlinks then entries through them, hardlinks out) must leave
//     everything outside that directory untouched.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { execFileSync } from "node:child_process";
import { unpackLayer } from "../../../runtime/src/oci/unpack.ts";
import { emptyDir, LayerBuilder, mergeLayer, type Dir } from "../../../runtime/src/oci/layers.ts";
import { ObjectSink } from "../../../runtime/src/oci/objects-sink.ts";
import { storeLayout } from "../../../runtime/src/store/layout.ts";
import { materialize } from "../../../runtime/src/store/source.ts";
import { TarReader } from "../../../runtime/src/tar/reader.ts";
import type { Compression } from "../../../runtime/src/oci/schema.ts";
import { tarBytes, type TarItem } from "../../host/lib/oci-tar.ts";
import { archiveArb, editHeaders, fixChecksums, headerEditArb } from "./tar-gen.ts";
import { CASE_MS, mutate, mutationArb, outcomeAsync, params, RUNS, timeoutFor } from "./lib.ts";

let root: string;
let sysroot: string;
let outside: string;
const layout = () => join(sysroot, "particle", "cache", "oci");
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "fuzz-layer-"));
  sysroot = join(root, "sysroot");
  outside = join(root, "outside");
  mkdirSync(join(layout(), "blobs", "sha256"), { recursive: true });
  mkdirSync(join(sysroot, "particle", "tmp"));
  mkdirSync(outside);
  writeFileSync(join(outside, "sentinel"), "untouched");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Every path under `dir` (relative), directories included. */
function listAll(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort();
}

function expectOutsideUntouched(): void {
  expect(readdirSync(outside)).toEqual(["sentinel"]);
  expect(readFileSync(join(outside, "sentinel"), "utf8")).toBe("untouched");
  expect(readdirSync(root).sort()).toEqual(["outside", "sysroot"]);
  expect(readdirSync(join(sysroot, "particle")).sort()).toEqual(["cache", "tmp"]);
}

const lowerTree = (): Dir => {
  const lower = emptyDir();
  const b = new LayerBuilder(emptyDir(), "layer 1/2");
  const r = new TarReader((e) => { b.add(e); return undefined; });
  r.push(tarBytes([{ path: "etc/passwd", data: "" }, { path: "usr/", type: "dir" }]));
  r.end();
  mergeLayer(lower, b.root);
  return lower;
};

const compressions: Compression[] = ["none", "gzip"];
const compress = (tar: Buffer, c: Compression): Buffer => (c === "gzip" ? gzipSync(tar, { level: 1 }) : c === "zstd" ? execFileSync("zstd", ["-q", "-c", "-1"], { input: tar }) : tar);

const hostile: fc.Arbitrary<TarItem> = fc.constantFrom<TarItem>(
  { path: "../../outside/pwned", data: "x" },
  { path: "/abs", data: "x" },
  { path: "out", type: "symlink", linkname: "../../outside" },
  { path: "out/pwned", data: "x" },
  { path: "hl", type: "link", linkname: "../../outside/sentinel" },
  { path: "hl2", type: "link", linkname: "/etc/passwd" },
  { path: "hl3", type: "link", linkname: "later" },
  { path: "later", data: "l" },
);

/** A layer's tar: well-formed, hostile, or mutated past its checksums. */
const layerTar = fc.oneof(
  archiveArb.map((a) => a.bytes),
  fc.array(hostile, { maxLength: 6 }).map((items) => tarBytes(items)),
  fc.tuple(archiveArb, fc.array(headerEditArb, { maxLength: 2 }), fc.array(mutationArb, { maxLength: 2 })).map(([a, e, m]) => fixChecksums(editHeaders(mutate(a.bytes, m), e))),
);

let seq = 0;
let blobFile = "";
/** Writes the blob (named by its digest, or by `claimed` to fake a corrupted cache) and unpacks it into a fresh work directory. */
async function unpack(blob: Buffer, compression: Compression, claimed?: string): Promise<{ work: string; run: () => Promise<Dir> }> {
  const digest = claimed ?? sha(blob);
  blobFile = join(layout(), "blobs", "sha256", digest.slice(7));
  writeFileSync(blobFile, blob);
  const work = join(sysroot, "particle", "tmp", `w${seq++}`);
  mkdirSync(join(work, "objects"), { recursive: true });
  const sink = new ObjectSink(storeLayout(sysroot), join(work, "objects"));
  const layer = { digest, size: blob.length, compression, diffId: digest };
  return { work, run: () => unpackLayer(layout(), layer, "image oci:/fuzz:v1: layer 2/2", lowerTree(), sink, () => {}) };
}

/** After a case: only numbered temp objects were written under the work directory, nothing anywhere else. */
function checkWrites(work: string): void {
  for (const p of listAll(work)) expect(p === "objects" || /^objects\/\d+$/.test(p), `wrote ${p}`).toBe(true);
  expectOutsideUntouched();
  expect(readdirSync(join(layout(), "blobs", "sha256"))).toEqual([blobFile.split("/").at(-1)]);
}

/** Leaves the sysroot as it was, whatever the case did (so a shrinking run starts clean). */
function cleanUp(work: string): void {
  rmSync(work, { recursive: true, force: true });
  rmSync(join(layout(), "blobs", "sha256"), { recursive: true, force: true });
  mkdirSync(join(layout(), "blobs", "sha256"));
}

const LAYER = /^image oci:\/fuzz:v1: layer 2\/2: /;

async function layerCase(tar: Buffer, c: Compression, ms: readonly Parameters<typeof mutate>[1][number][], corrupt: boolean): Promise<void> {
  const blob = mutate(compress(tar, c), ms);
  const { work, run } = await unpack(blob, c, corrupt ? sha(Buffer.concat([blob, Buffer.from("x")])) : undefined);
  try {
    const r = await outcomeAsync(run, [LAYER], c === "zstd" ? CASE_MS * 5 : CASE_MS);
    if (corrupt) expect(r.ok ? "accepted" : r.error.message).toMatch(/is corrupted/);
    checkWrites(work);
  } finally {
    cleanUp(work);
  }
}

describe("OCI layer blobs (real files, temp sysroot)", () => {
  // A case here costs file writes and a stream (4 to 25 ms on this machine): a twentieth of the runs. The
  // tar reader and layer builder behind it take the full count in memory (tar.fuzz.test.ts).
  const fileRuns = Math.max(100, RUNS / 20);
  it(`gzip and uncompressed layers: a tree, or an error naming the image and layer; nothing written but temp objects (${Math.round(fileRuns)} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(layerTar, fc.constantFrom(...compressions), fc.array(mutationArb, { maxLength: 2 }), fc.boolean(), async (tar, c, ms, corrupt) => {
        await layerCase(tar, c, ms, corrupt && ms.length === 0);
      }),
      params(fileRuns),
    );
  }, timeoutFor(fileRuns, 10));

  // Each case spawns the zstd program (the decoder is not ours: the wrapping is), so a share of the runs.
  const zstdRuns = Math.max(50, RUNS / 200);
  it(`zstd layers, intact and damaged (${Math.round(zstdRuns)} cases: one zstd process each)`, async () => {
    await fc.assert(
      fc.asyncProperty(layerTar, fc.array(mutationArb, { maxLength: 2 }), async (tar, ms) => {
        await layerCase(tar, "zstd", ms, false);
      }),
      params(zstdRuns),
    );
  }, timeoutFor(zstdRuns, 40));
});

describe("tar sources extracted by GNU tar (particle stage tar:…)", () => {
  const runs = Math.max(50, RUNS / 200);
  it(`hostile archives never write outside the work directory (${Math.round(runs)} cases: one tar process each)`, async () => {
    const escaping = fc.constantFrom<TarItem>(
      { path: "../../../outside/pwned", data: "x" },
      { path: "/ABS/outside/pwned", data: "x" },
      { path: "out", type: "symlink", linkname: "/ABS/outside" },
      { path: "out/pwned", data: "x" },
      { path: "rel", type: "symlink", linkname: "../../../outside" },
      { path: "rel/pwned", data: "x" },
      { path: "hl", type: "link", linkname: "/ABS/outside/sentinel" },
      { path: "hl2", type: "link", linkname: "../../../outside/sentinel" },
      { path: "out", type: "link", linkname: "/ABS/outside/sentinel" },
      { path: "d/", type: "dir" },
      { path: "d/f", data: "fine" },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(escaping, { minLength: 1, maxLength: 6 }), async (items) => {
        const abs = items.map((i) => ({ ...i, path: String(i.path).replace("/ABS", root), linkname: i.linkname === undefined ? undefined : String(i.linkname).replace("/ABS", root) }));
        const work = join(sysroot, "particle", "tmp", `t${seq++}`);
        mkdirSync(work, { recursive: true });
        const file = join(work, "in.tar");
        writeFileSync(file, tarBytes(abs));
        const r = await outcomeAsync(() => materialize({ kind: "tar", path: file }, work), [`source tar:${file}: cannot unpack`], CASE_MS * 5);
        if (r.ok) expect(r.value).toBe(join(work, "src"));
        expectOutsideUntouched();
        rmSync(work, { recursive: true, force: true });
      }),
      params(runs),
    );
  }, timeoutFor(runs, 100));
});
