// Writing OCI layouts by hand for benchmark workloads: a layer blob from a tar command (GNU tar
// piped through gzip or zstd), JSON blobs, and a manifest tagged in the layout's index.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sh } from "./lib.ts";

const sha256File = async (p: string) => `sha256:${(await sh(["sha256sum", p])).split(" ")[0]}`;

/** `gzipLevel`: -1 by default (fast workload builds); 6 is what container builders write. */
export async function blobFrom(layout: string, tarCmd: string, compression: "gzip" | "zstd" | "none", gzipLevel = 1): Promise<{ digest: string; size: number; diffId: string; mediaType: string }> {
  const tmp = join(layout, "tmp-blob");
  const diff = join(layout, "tmp-diffid");
  const z = compression === "gzip" ? `gzip -n -${gzipLevel}` : compression === "zstd" ? "zstd -q -3 -T2" : "cat";
  await sh(["bash", "-o", "pipefail", "-c", `${tarCmd} | tee >(sha256sum | cut -d' ' -f1 > ${diff}) | ${z} > ${tmp}; sleep 0.2`]);
  const digest = await sha256File(tmp);
  renameSync(tmp, join(layout, "blobs/sha256", digest.slice(7)));
  const diffId = `sha256:${readFileSync(diff, "utf8").trim()}`;
  rmSync(diff);
  const mediaType = `application/vnd.oci.image.layer.v1.tar${compression === "none" ? "" : `+${compression}`}`;
  return { digest, size: statSync(join(layout, "blobs/sha256", digest.slice(7))).size, diffId, mediaType };
}

export function writeJsonBlob(layout: string, value: unknown): { digest: string; size: number } {
  const b = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash("sha256").update(b).digest("hex")}`;
  writeFileSync(join(layout, "blobs/sha256", digest.slice(7)), b);
  return { digest, size: b.length };
}

export type LayerBlob = Awaited<ReturnType<typeof blobFrom>>;

export function writeManifest(layout: string, tag: string, layers: LayerBlob[], labels: Record<string, string> = { bench: tag }): string {
  const cfg = writeJsonBlob(layout, { architecture: "amd64", os: "linux", created: "2026-01-01T00:00:00Z", config: { Labels: labels }, rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) } });
  const m = writeJsonBlob(layout, {
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  });
  const indexPath = join(layout, "index.json");
  const index = existsSync(indexPath) ? JSON.parse(readFileSync(indexPath, "utf8")) : { schemaVersion: 2, manifests: [] };
  index.manifests = index.manifests.filter((d: any) => d.annotations?.["org.opencontainers.image.ref.name"] !== tag);
  index.manifests.push({ mediaType: "application/vnd.oci.image.manifest.v1+json", ...m, annotations: { "org.opencontainers.image.ref.name": tag } });
  writeFileSync(indexPath, JSON.stringify(index));
  return m.digest;
}

