// What staging must find free on the sysroot before it writes anything. Only a lower bound can be
// known up front: a composefs stage adds objects only for content the store lacks, and that is
// known once each file is hashed. The bound covers what is written whatever the dedup: the
// metadata image (or, for a full erofs image, every byte of the tree that is not a hole the image keeps). Running out later is still
// caught (ENOSPC) and leaves the store as it was.
import type { RootFormat } from "../manifest.ts";
import { checkSpace, type SpaceNeed } from "../deployments/space.ts";

/** Bytes of composefs metadata image per file: 61k Debian files made a 16.5 MB image (~270 B each). */
export const IMAGE_BYTES_PER_FILE = 200;

export function stageSpaceNeed(format: RootFormat, files: number, bytes: number, sysroot: string, free: number): SpaceNeed {
  const image = files * IMAGE_BYTES_PER_FILE;
  const needed = format === "erofs" ? image + bytes : image;
  return { what: `sysroot ${sysroot} (the ${format} image of ${files} files)`, needed, free };
}

export function precheckStageSpace(format: RootFormat, files: number, bytes: number, sysroot: string, free: number): Error | undefined {
  return checkSpace([stageSpaceNeed(format, files, bytes, sysroot, free)]);
}
