// Which layer each file of a tree goes in, split along dpkg packages (the idea of rpm-ostree's
// build-chunked-oci and chunkah): an update that changes one package then changes one layer, and a
// machine downloads that layer only. Pure: package file lists and sizes in, a plan out.
import { nodeCrypto } from "../system/node-crypto.ts";

export interface PackageFiles {
  name: string;
  /** Paths as dpkg lists them (/var/lib/dpkg/info/<pkg>.list), absolute. */
  paths: string[];
}

export interface ChunkPlan {
  /** Layer names in image order. */
  layers: string[];
  /** Relative path (no leading "/") of every non-directory → its layer's index. */
  layerOf: Map<string, number>;
}

/** Layers for files no package owns (configuration written at build time, Particle-OS itself). */
export const UNOWNED = "unowned";
/** Unowned files that change with every package update (the dpkg and apt state, generated /etc
 *  files such as ld.so.cache) are kept apart from the rest, which is mostly what `make install`
 *  added: otherwise any update would download Particle-OS's binaries again. */
export const UNOWNED_GROUPS: ReadonlyArray<[prefix: string, layer: string]> = [["var/lib/dpkg/", "unowned:dpkg"], ["var/", "unowned:var"], ["etc/", "unowned:etc"]];

function unownedLayer(rel: string): string {
  return UNOWNED_GROUPS.find(([prefix]) => rel.startsWith(prefix))?.[1] ?? UNOWNED;
}
/** Small packages share a fixed number of bins chosen by a hash of their name, so that one package
 *  growing or shrinking never moves the others. */
export const BIN_LAYERS = 16;

const binOf = (name: string, bins: number): number => nodeCrypto().createHash("sha256").update(name).digest().readUInt32BE(0) % bins;

/**
 * `files` maps each non-directory path of the tree to its size. The biggest packages get a layer
 * each; the rest go into BIN_LAYERS bins; unowned files get their own layer. `maxLayers` caps the
 * total (registries and runtimes cope badly with more than ~127).
 */
export function planChunks(files: Map<string, number>, packages: PackageFiles[], maxLayers: number): ChunkPlan {
  const reserved = BIN_LAYERS + UNOWNED_GROUPS.length + 1;
  if (!Number.isInteger(maxLayers) || maxLayers < reserved + 1) throw new Error(`chunking: at least ${reserved + 1} layers are needed, got ${maxLayers}`);
  // A path listed by several packages (a diversion, a shared file) goes to the first by name.
  const owner = new Map<string, string>();
  for (const p of [...packages].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    for (const abs of p.paths) {
      const rel = abs.replace(/^\/+/, "");
      if (files.has(rel) && !owner.has(rel)) owner.set(rel, p.name);
    }
  }
  const size = new Map<string, number>();
  for (const [rel, name] of owner) size.set(name, (size.get(name) ?? 0) + files.get(rel)!);
  const own = maxLayers - reserved;
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const big = new Set([...size.entries()].sort(([a, x], [b, y]) => y - x || byName(a, b)).slice(0, own).map(([n]) => n));
  const layers = [...[...big].sort(byName).map((n) => `pkg:${n}`), ...Array.from({ length: BIN_LAYERS }, (_, i) => `bin:${i}`), ...UNOWNED_GROUPS.map(([, l]) => l), UNOWNED];
  const index = new Map(layers.map((l, i) => [l, i]));
  const layerOf = new Map<string, number>();
  for (const rel of [...files.keys()].sort()) {
    const pkg = owner.get(rel);
    const name = pkg === undefined ? unownedLayer(rel) : big.has(pkg) ? `pkg:${pkg}` : `bin:${binOf(pkg, BIN_LAYERS)}`;
    layerOf.set(rel, index.get(name)!);
  }
  // An empty bin would be an empty layer: drop it and renumber.
  const used = [...new Set(layerOf.values())].sort((a, b) => a - b);
  const renumber = new Map(used.map((old, i) => [old, i]));
  for (const [rel, i] of layerOf) layerOf.set(rel, renumber.get(i)!);
  return { layers: used.map((i) => layers[i]!), layerOf };
}

/** The paths of a dpkg .list file (one absolute path per line; "/." is the root). */
export function parseDpkgList(text: string): string[] {
  return text.split("\n").filter((l) => l.startsWith("/") && l !== "/.");
}
