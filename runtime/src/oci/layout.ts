// Reading an image out of an OCI layout directory: index.json → manifest → config, each blob
// checked against its digest before it is parsed, so a corrupted cache is refused by name.
import { nodeCrypto } from "../system/node-crypto.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Descriptor, ImageConfig, ImageIndex, ImageManifest, layerCompression, MEDIA, parseJson, type Compression } from "./schema.ts";

export const REF_NAME = "org.opencontainers.image.ref.name";

export interface LayerRef {
  digest: string;
  size: number;
  compression: Compression;
  /** The uncompressed digest from the config's rootfs.diff_ids. */
  diffId: string;
}

export interface OciImage {
  /** Digest of the image manifest (not of an index above it). */
  manifestDigest: string;
  layers: LayerRef[];
  config: ImageConfig;
}

export const blobPath = (layout: string, digest: string): string => join(layout, "blobs", "sha256", digest.slice("sha256:".length));

function readBlob(layout: string, d: Descriptor, what: string): string {
  const where = `OCI layout ${layout}: ${what} ${d.digest}`;
  let buf: Buffer;
  try {
    buf = readFileSync(blobPath(layout, d.digest));
  } catch (e) {
    throw new Error(`${where}: cannot read blob: ${(e as Error).message}`);
  }
  const got = `sha256:${nodeCrypto().createHash("sha256").update(buf).digest("hex")}`;
  if (got !== d.digest) throw new Error(`${where}: blob is corrupted (its content hashes to ${got})`);
  return buf.toString("utf8");
}

/** Node's process.arch → the OCI platform architecture. */
export const OCI_ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

/** Pure: which manifest of an index is meant: the one tagged `tag`, or the only one. */
export function pickManifest(index: ImageIndex, tag: string | undefined, where: string): Descriptor {
  const ms = tag === undefined ? index.manifests : index.manifests.filter((m) => m.annotations?.[REF_NAME] === tag);
  if (ms.length === 0) throw new Error(`${where}: no image ${tag === undefined ? "in index.json" : `tagged ${JSON.stringify(tag)}`}`);
  if (ms.length > 1) throw new Error(`${where}: ${ms.length} images${tag === undefined ? "; name one with :TAG" : ` tagged ${JSON.stringify(tag)}`}`);
  return ms[0]!;
}

/** Pure: the platform's manifest in a multi-platform index. */
export function pickPlatform(index: ImageIndex, arch: string, where: string): Descriptor {
  const ms = index.manifests.filter((m) => !m.platform || (m.platform.os === "linux" && m.platform.architecture === arch));
  if (ms.length === 0) throw new Error(`${where}: no image for linux/${arch} in the index`);
  return ms[0]!;
}

export function readImage(layout: string, tag: string | undefined, arch = OCI_ARCH[process.arch] ?? process.arch): OciImage {
  const where = `OCI layout ${layout}`;
  let indexText: string;
  try {
    indexText = readFileSync(join(layout, "index.json"), "utf8");
  } catch (e) {
    throw new Error(`${where}: cannot read index.json: ${(e as Error).message}`);
  }
  let desc = pickManifest(parseJson(ImageIndex, indexText, `${where}: index.json`), tag, where);
  // Nested indexes (multi-platform images): follow to the platform's manifest.
  for (let depth = 0; desc.mediaType === MEDIA.index || desc.mediaType === MEDIA.dockerList; depth++) {
    if (depth > 4) throw new Error(`${where}: indexes nested too deep`);
    desc = pickPlatform(parseJson(ImageIndex, readBlob(layout, desc, "index"), `${where}: index ${desc.digest}`), arch, where);
  }
  if (desc.mediaType !== MEDIA.manifest && desc.mediaType !== MEDIA.dockerManifest) {
    throw new Error(`${where}: ${desc.digest} has media type ${desc.mediaType}, not an image manifest`);
  }
  const manifest = parseJson(ImageManifest, readBlob(layout, desc, "manifest"), `${where}: manifest ${desc.digest}`);
  const config = parseJson(ImageConfig, readBlob(layout, manifest.config, "config"), `${where}: config ${manifest.config.digest}`);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new Error(`${where}: manifest ${desc.digest} lists ${manifest.layers.length} layers but its config has ${config.rootfs.diff_ids.length} diff_ids`);
  }
  const layers = manifest.layers.map((l, i): LayerRef => {
    const compression = layerCompression(l.mediaType);
    if (!compression) throw new Error(`${where}: layer ${i + 1} (${l.digest}) has unsupported media type ${l.mediaType}`);
    return { digest: l.digest, size: l.size, compression, diffId: config.rootfs.diff_ids[i]! };
  });
  return { manifestDigest: desc.digest, layers, config };
}
