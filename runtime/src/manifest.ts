// deployment.json: the one file that says what a deployment is. Written atomically after the image
// and every object it names are durable, so a deployment directory without it is garbage.
// zod/mini, not zod: particle-boot parses this file on every boot, and evaluating classic zod's
// modules and building these schemas with its method-laden instances was most of its start-up
// (docs/perf-notes.md §12). The checks are the same; classic schemas elsewhere nest these.
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";
import { parseJsonText } from "./json-text.ts";

export const Sha256Hex = z.string().check(z.regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits"));
export const DeploymentId = z.string().check(z.regex(/^[0-9a-z][0-9a-z._-]{0,63}$/, "expected a deployment id like 1 or 2-ab12"));
export const RootFormat = z.enum(["composefs", "erofs", "squashfs"]);
export type RootFormat = z.infer<typeof RootFormat>;

/** What an OCI image deployment was staged from; `particle upgrade` tracks `reference`. */
export const OciOrigin = z.object({
  /** The image reference in skopeo's syntax, paths made absolute (e.g. "docker://quay.io/x/os:stable", "oci:/srv/layout:v2"). */
  reference: z.string(),
  /** Digest of the top-level manifest at the source when it was staged (what `upgrade` compares with). */
  sourceDigest: z.string().check(z.regex(/^sha256:[0-9a-f]{64}$/)),
  /** Digest of the image manifest that was unpacked (the platform's manifest, as copied into the cache). */
  manifestDigest: z.string().check(z.regex(/^sha256:[0-9a-f]{64}$/)),
  /** The image config's `created` time, if it has one. */
  created: z.optional(z.string()),
  /** The image config's labels. */
  labels: z.record(z.string(), z.string()),
  /** Number of layers. */
  layers: z.number().check(z.int(), z.nonnegative()),
});
export type OciOrigin = z.infer<typeof OciOrigin>;

export const Manifest = z.object({
  /** Schema version of this file. */
  schema: z.literal(1),
  /** Deployment id: also the directory name under particle/deploy/. */
  id: DeploymentId,
  format: RootFormat,
  /**
   * composefs/erofs: fs-verity digest (sha256, 4 KiB blocks) of the image file.
   * squashfs: plain sha256 of the image file, checked before mount.
   */
  imageDigest: Sha256Hex,
  /** Where the tree came from, as given to `particle stage` (e.g. "dir:/srv/tree", "tar:/x.tar.zst"). */
  source: z.string(),
  /** ISO 8601 time of staging. */
  created: z.string(),
  /** Optional human version (from the tree's /etc/os-release VERSION_ID or --version). */
  version: z.optional(z.string()),
  /** Number of files in the tree and their total size. */
  files: z.number().check(z.int(), z.nonnegative()),
  bytes: z.number().check(z.nonnegative()),
  /** Kernel shipped in the tree (/usr/lib/modules/<kver>/vmlinuz), if any. */
  kernel: z.optional(z.string()),
  /** For a deployment made by `particle layer`: the image its packages were layered onto. */
  base: z.optional(z.object({ id: DeploymentId, imageDigest: Sha256Hex })),
  /** Packages layered onto `base` with apt (what `particle upgrade` re-applies), sorted. */
  layered: z.optional(z.array(z.string())),
  /** Present when the tree came from an OCI image. */
  oci: z.optional(OciOrigin),
});
export type Manifest = z.infer<typeof Manifest>;

export function parseManifest(text: string, where: string): Manifest {
  const v = parseJsonText(text, where);
  const r = Manifest.safeParse(v);
  if (r.success) return r.data;
  // zod/mini carries no messages ("Invalid input"); classic zod installs the English ones when it
  // is loaded, which particle-boot never does. Installed here, on the way to an error only.
  z.config(en());
  throw new Error(`${where}: invalid manifest: ${z.prettifyError(Manifest.safeParse(v).error ?? r.error)}`);
}

export function renderManifest(m: Manifest): string {
  return JSON.stringify(Manifest.parse(m), null, 2) + "\n";
}
