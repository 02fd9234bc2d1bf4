// squashfs stores mtimes as unsigned 32-bit seconds: mksquashfs silently wraps a file dated before
// 1970 to 2106. A tree holding such a time is refused before anything is written; EROFS (erofs and
// composefs formats) keeps it exactly.
import { walk, type Inode } from "../tree/model.ts";

const U32 = 0xffff_ffff;

/** The first path (bytes, "/"-joined) whose mtime squashfs cannot store, with that time in seconds. */
export function unrepresentableInSquashfs(root: Inode): { path: string; sec: number } | undefined {
  for (const [path, inode] of walk(root)) {
    if (inode.mtimeSec < 0 || inode.mtimeSec > U32) return { path: path.toString() || "/", sec: inode.mtimeSec };
  }
  return undefined;
}
