import { describe, expect, it } from "vitest";
import { planCachePrune } from "../../runtime/src/oci/cache-prune.ts";

const d = (c: string) => `sha256:${c.repeat(64)}`;
const desc = (digest: string, tag?: string) => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: 1, ...(tag ? { annotations: { "org.opencontainers.image.ref.name": tag } } : {}) });
const manifest = (config: string, layers: string[]) => ({ schemaVersion: 2 as const, config: desc(config), layers: layers.map((l) => desc(l)) });

describe("planCachePrune", () => {
  const index = { schemaVersion: 2 as const, manifests: [desc(d("1"), "ref-a"), desc(d("2"), "ref-b"), desc(d("9"), "ref-broken")] };
  const manifests = new Map([
    [d("1"), manifest(d("c"), [d("a"), d("b")])],
    // v2 shares layer a with v1: pruning v1 must not take it.
    [d("2"), manifest(d("e"), [d("a"), d("f")])],
  ]);
  const hex = (x: string) => x.slice(7);
  const blobFiles = ["1", "2", "9", "c", "e", "a", "b", "f"].map((c) => hex(d(c))).concat(["partial-download.tmp"]);
  const layerEntries = ["a", "b", "f"].map((c) => `${hex(d(c))}.json`);

  it("keeps a kept image's manifest, config and layers, shared ones included", () => {
    const p = planCachePrune({ index, manifests, keepManifests: new Set([d("2")]), blobFiles, layerEntries });
    expect(p.index.manifests.map((m) => m.digest)).toEqual([d("2")]);
    expect(p.droppedTags).toEqual(["ref-a", "ref-broken"]);
    expect(p.removeBlobFiles.sort()).toEqual([hex(d("1")), hex(d("9")), hex(d("b")), hex(d("c")), "partial-download.tmp"].sort());
    expect(p.removeLayerEntries).toEqual([`${hex(d("b"))}.json`]);
  });
  it("a kept deployment whose manifest is unreadable keeps nothing of it (staging fetches it again)", () => {
    const p = planCachePrune({ index, manifests, keepManifests: new Set([d("9")]), blobFiles, layerEntries });
    expect(p.index.manifests).toEqual([]);
    expect(p.removeBlobFiles).toHaveLength(blobFiles.length);
  });
  it("nothing to drop when every image is kept", () => {
    const p = planCachePrune({ index: { ...index, manifests: index.manifests.slice(0, 2) }, manifests, keepManifests: new Set([d("1"), d("2")]), blobFiles: blobFiles.filter((f) => f !== hex(d("9")) && !f.includes("tmp")), layerEntries });
    expect(p).toMatchObject({ droppedTags: [], removeBlobFiles: [], removeLayerEntries: [] });
  });
});
