// Builds OCI image layouts for tests, by hand: blobs named by node's sha256, gzip by zlib, zstd by
// the zstd program, then manifest, config and index.json. No registry, no network.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export type LayerCompression = "none" | "gzip" | "zstd";

export interface BuiltBlob {
  digest: string;
  size: number;
  mediaType: string;
}

export const blobPathOf = (layout: string, digest: string): string => join(layout, "blobs", "sha256", digest.slice("sha256:".length));

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export function writeBlob(layout: string, bytes: Buffer, mediaType: string): BuiltBlob {
  const dir = join(layout, "blobs", "sha256");
  mkdirSync(dir, { recursive: true });
  const digest = sha(bytes);
  writeFileSync(join(dir, digest.slice(7)), bytes);
  return { digest, size: bytes.length, mediaType };
}

export function compress(tar: Buffer, c: LayerCompression): Buffer {
  if (c === "gzip") return gzipSync(tar, { level: 1 });
  if (c === "zstd") return execFileSync("zstd", ["-q", "-c", "-1"], { input: tar, maxBuffer: 1 << 30 });
  return tar;
}

const LAYER_TYPE: Record<LayerCompression, string> = {
  none: "application/vnd.oci.image.layer.v1.tar",
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
};

export interface ImageSpec {
  tag: string;
  /** Uncompressed layer tars, bottom first, with how each is compressed. */
  layers: Array<{ tar: Buffer; compression: LayerCompression }>;
  labels?: Record<string, string>;
  created?: string;
}

/** Writes (or adds to) a layout; the tag moves to the new image if it existed. Returns the manifest digest. */
export function writeImage(layout: string, spec: ImageSpec): string {
  mkdirSync(layout, { recursive: true });
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const layers = spec.layers.map((l) => writeBlob(layout, compress(l.tar, l.compression), LAYER_TYPE[l.compression]));
  const config = {
    architecture: "amd64", os: "linux", created: spec.created ?? "2026-01-02T03:04:05Z",
    config: { Labels: spec.labels ?? {} },
    rootfs: { type: "layers", diff_ids: spec.layers.map((l) => sha(l.tar)) },
  };
  const cfg = writeBlob(layout, Buffer.from(JSON.stringify(config)), "application/vnd.oci.image.config.v1+json");
  const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: cfg, layers };
  const m = writeBlob(layout, Buffer.from(JSON.stringify(manifest)), "application/vnd.oci.image.manifest.v1+json");
  const indexPath = join(layout, "index.json");
  const index = existsSync(indexPath) ? JSON.parse(readFileSync(indexPath, "utf8")) : { schemaVersion: 2, manifests: [] };
  index.manifests = index.manifests.filter((d: any) => d.annotations?.["org.opencontainers.image.ref.name"] !== spec.tag);
  index.manifests.push({ ...m, annotations: { "org.opencontainers.image.ref.name": spec.tag } });
  writeFileSync(indexPath, JSON.stringify(index));
  return m.digest;
}

/** GNU tar of a directory as a layer: PAX format with every xattr, numeric owners, as `docker build` layers carry them. */
export function tarDir(dir: string): Buffer {
  return execFileSync("tar", ["--create", "--format=pax", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--sort=name", "-C", dir, "."], { maxBuffer: 1 << 30 });
}
