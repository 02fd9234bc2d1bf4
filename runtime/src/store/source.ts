// Parsing a staging source ("dir:PATH", "tar:PATH", an image reference in skopeo's syntax, or a
// bare path) and making a directory source a directory (images are streamed: see oci/).
import { existsSync, mkdirSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { run } from "../system/exec.ts";
import { ImageRef, parseImageRef } from "../oci/transport.ts";

export const Source = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("dir"), path: z.string() }),
  z.object({ kind: z.literal("tar"), path: z.string() }),
  z.object({ kind: z.literal("oci"), image: ImageRef }),
]);
export type Source = z.infer<typeof Source>;

const TAR_NAME = /\.(tar|tar\.gz|tgz|tar\.zst|tar\.zstd|tzst)$/;

/** Pure: what the user typed → a source. Bare paths are taken as directories unless they look like tarballs. */
export function parseSource(spec: string): Source {
  if (spec === "") throw new Error("source: empty (expected dir:PATH, tar:PATH or an image such as docker://NAME or oci:PATH)");
  const image = parseImageRef(spec);
  if (image) return { kind: "oci", image };
  const m = /^([a-z-]+):(.*)$/.exec(spec);
  if (m) {
    const [, scheme, rest] = m;
    if (!rest) throw new Error(`source ${spec}: missing path after "${scheme}:"`);
    if (scheme === "dir") return { kind: "dir", path: rest };
    if (scheme === "tar") return { kind: "tar", path: rest };
    throw new Error(`source ${spec}: unknown scheme "${scheme}" (expected dir:, tar:, docker://, oci:, oci-archive:, docker-archive: or containers-storage:)`);
  }
  return TAR_NAME.test(spec) ? { kind: "tar", path: spec } : { kind: "dir", path: spec };
}

export function describeSource(s: Source): string {
  if (s.kind === "oci") return s.image.ref;
  return `${s.kind}:${resolve(s.path)}`;
}

/** Returns a directory holding the tree: the source itself, or the tarball unpacked under `work`. */
export async function materialize(s: Source, work: string): Promise<string> {
  if (s.kind === "oci") throw new Error(`source ${s.image.ref}: images are streamed, not materialised`);
  const path = resolve(s.path);
  if (!existsSync(path)) throw new Error(`source ${s.kind}:${s.path}: no such ${s.kind === "dir" ? "directory" : "file"}`);
  if (s.kind === "dir") {
    if (!statSync(path).isDirectory()) throw new Error(`source dir:${s.path}: not a directory`);
    return path;
  }
  if (!statSync(path).isFile()) throw new Error(`source tar:${s.path}: not a file`);
  const dir = `${work}/src`;
  mkdirSync(dir);
  // GNU tar recognises gzip and zstd by their magic numbers when reading; --xattrs-include='*'
  // keeps security.capability and trusted.* that tar would otherwise drop.
  try {
    await run("tar", ["--extract", "--file", path, "--directory", dir, "--preserve-permissions", "--same-owner",
      "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--no-overwrite-dir"]);
  } catch (e) {
    throw new Error(`source tar:${s.path}: cannot unpack: ${(e as Error).message}`);
  }
  return dir;
}
