// The JSON documents of a built image: config, manifest, index. Pure: the same inputs give the same
// text (fixed key order, labels sorted, `created` from SOURCE_DATE_EPOCH), hence the same digests.
import { MEDIA } from "../oci/schema.ts";
import { REF_NAME } from "../oci/layout.ts";
import type { WrittenBlob, WrittenLayer } from "./blob-write.ts";

export const LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

/** bootc's label for a bootable image, and ours (both are set; readers may check either). */
export const BOOTC_LABEL = "containers.bootc";
export const BOOTABLE_LABEL = "org.particle-os.bootable";

export interface ImageSpec {
  epoch: number;
  labels: Record<string, string>;
  /** Where each layer came from, for `history` (one per layer). */
  createdBy: string[];
  env?: string[];
  cmd?: string[];
}

export const isoTime = (epoch: number): string => new Date(epoch * 1000).toISOString().replace(/\.000Z$/, "Z");

function sortedRecord(r: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function configJson(spec: ImageSpec, layers: WrittenLayer[], arch = "amd64"): string {
  if (spec.createdBy.length !== layers.length) throw new Error(`image config: ${layers.length} layers but ${spec.createdBy.length} history entries`);
  const created = isoTime(spec.epoch);
  return JSON.stringify({
    created,
    architecture: arch,
    os: "linux",
    config: {
      Env: spec.env ?? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      Cmd: spec.cmd ?? ["/bin/bash"],
      Labels: sortedRecord(spec.labels),
    },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: spec.createdBy.map((created_by) => ({ created, created_by })),
  });
}

export function manifestJson(config: WrittenBlob, layers: WrittenLayer[]): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: LAYER_GZIP, digest: l.digest, size: l.size })),
  });
}

export function indexJson(manifest: WrittenBlob, tag: string): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [{ mediaType: MEDIA.manifest, digest: manifest.digest, size: manifest.size, annotations: { [REF_NAME]: tag } }],
  });
}

/** `KEY=VALUE` command-line labels → a record; the error names the bad one. */
export function parseLabels(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new Error(`--label ${JSON.stringify(item)}: expected KEY=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** SOURCE_DATE_EPOCH as reproducible-builds.org defines it: decimal seconds; the error names the variable. */
export function parseEpoch(text: string | undefined, what = "SOURCE_DATE_EPOCH"): number {
  if (text === undefined || text === "") throw new Error(`${what} is not set: a reproducible image needs a fixed time`);
  if (!/^[0-9]{1,12}$/.test(text)) throw new Error(`${what}=${JSON.stringify(text)}: expected whole seconds since 1970`);
  return Number(text);
}
