// The parts of the OCI image spec particle reads: index, image manifest, image config. Only the
// fields used are required; everything else passes through (images carry many optional fields).
import { z } from "zod";
import { parseJsonText } from "../json-text.ts";

export const Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 hex digits>");

export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
} as const;

export const Descriptor = z.object({
  mediaType: z.string(),
  digest: Digest,
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: z.object({ architecture: z.string(), os: z.string(), variant: z.string().optional() }).optional(),
});
export type Descriptor = z.infer<typeof Descriptor>;

export const ImageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(Descriptor),
});
export type ImageIndex = z.infer<typeof ImageIndex>;

export const ImageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: Descriptor,
  layers: z.array(Descriptor),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.infer<typeof ImageManifest>;

export const ImageConfig = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  created: z.string().optional(),
  config: z.object({ Labels: z.record(z.string(), z.string()).nullish() }).passthrough().nullish(),
  rootfs: z.object({ type: z.literal("layers"), diff_ids: z.array(Digest) }),
});
export type ImageConfig = z.infer<typeof ImageConfig>;

export type Compression = "none" | "gzip" | "zstd";

/** A layer's compression from its media type (OCI and Docker names); undefined for what is not a filesystem layer. */
export function layerCompression(mediaType: string): Compression | undefined {
  const m = /^application\/vnd\.(?:oci\.image\.layer(?:\.nondistributable)?\.v1\.tar|docker\.image\.rootfs\.(?:foreign\.)?diff\.tar)(?:\+?\.?(gzip|zstd))?$/.exec(mediaType);
  if (!m) return undefined;
  return (m[1] as Compression | undefined) ?? "none";
}

/** Parses JSON text through a schema; the error names the blob and the field at fault. */
export function parseJson<T>(schema: z.ZodType<T>, text: string, where: string): T {
  const r = schema.safeParse(parseJsonText(text, where));
  if (!r.success) throw new Error(`${where}: ${z.prettifyError(r.error).replace(/\n/g, "; ")}`);
  return r.data;
}
