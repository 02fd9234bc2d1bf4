// Regular files of a layer go straight into the object store's staging area as they stream out of
// the tar: each chunk is hashed (fs-verity) and, for big files, written to a temp object in the
// same pass. Small files are held until their digest is known, so a content the store already has
// costs no write at all.
import { closeSync, constants, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Inode } from "../tree/model.ts";
import type { BodySink } from "../tar/reader.ts";
import { VerityHasher, verityDigest } from "../verity/digest.ts";
import { hasObject } from "../store/objects.ts";
import { CONTENT_MODE } from "../store/private.ts";
import type { StoreLayout } from "../store/layout.ts";

/** Up to this size a file is kept in memory until its digest decides whether it is written. */
const SMALL = 1 << 20;
export const EMPTY_DIGEST = verityDigest(new Uint8Array(0));

export class ObjectSink {
  /** digest → temp file under `dir`, for objects the store does not have yet. */
  readonly staged = new Map<string, string>();
  objectsAdded = 0;
  bytesAdded = 0;
  files = 0;
  bytes = 0;
  private n = 0;

  constructor(private readonly l: StoreLayout, private readonly dir: string) {}

  private known(digest: string): boolean {
    return this.staged.has(digest) || hasObject(this.l, digest);
  }

  /** Where an object's bytes are right now (staged temp file or the store). */
  pathOf(digest: string, objectPath: (d: string) => string): string {
    return this.staged.get(digest) ?? objectPath(digest);
  }

  /** A sink for the bytes of `inode` (a regular file); sets inode.data when the file is complete. */
  open(inode: Inode, what: string): BodySink {
    this.files++;
    this.bytes += inode.size;
    if (inode.size === 0) {
      inode.data = { kind: "object", digest: EMPTY_DIGEST };
      return { write() {}, end() {} };
    }
    const h = new VerityHasher();
    let got = 0;
    const check = () => {
      if (got !== inode.size) throw new Error(`${what}: ${got} bytes of content, header says ${inode.size}`);
    };
    if (inode.size <= SMALL) {
      const parts: Uint8Array[] = [];
      return {
        write: (c) => { h.update(c); parts.push(c); got += c.length; },
        end: () => {
          check();
          const digest = h.digest();
          inode.data = { kind: "object", digest };
          if (this.known(digest)) return;
          const tmp = join(this.dir, String(this.n++));
          const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, CONTENT_MODE);
          try {
            for (const p of parts) for (let off = 0; off < p.length;) off += writeSync(fd, p, off);
          } finally {
            closeSync(fd);
          }
          this.add(digest, tmp, got);
        },
      };
    }
    const tmp = join(this.dir, String(this.n++));
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, CONTENT_MODE);
    return {
      write: (c) => {
        h.update(c);
        for (let off = 0; off < c.length;) off += writeSync(fd, c, off);
        got += c.length;
      },
      end: () => {
        closeSync(fd);
        check();
        const digest = h.digest();
        inode.data = { kind: "object", digest };
        if (this.known(digest)) unlinkSync(tmp);
        else this.add(digest, tmp, got);
      },
    };
  }

  private add(digest: string, tmp: string, bytes: number): void {
    this.staged.set(digest, tmp);
    this.objectsAdded++;
    this.bytesAdded += bytes;
  }
}
