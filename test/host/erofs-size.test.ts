// Size and speed of composefs metadata images on a real tree, against what mkfs.erofs makes of the
// same tree with each file empty and carrying the same two overlay xattrs.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync,
  symlinkSync, writeFileSync, type BigIntStats,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { composefsTree, metacopyValue, redirectValue } from "../../runtime/src/composefs/encode.ts";
import { writeErofs } from "../../runtime/src/erofs/writer.ts";
import type { Inode } from "../../runtime/src/tree/model.ts";
import { inodeFromStat, kindOf } from "../../runtime/src/tree/scan.ts";

// A small real tree by default (the whole of /usr/share takes minutes to mirror on a loaded host);
// EROFS_SIZE_TREE=/usr/lib measures a ~70k-inode tree.
const SOURCE = process.env.EROFS_SIZE_TREE ?? "/usr/share/doc";
const tmp = mkdtempSync(join(tmpdir(), "erofs-size-"));
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts.reverse()) execFileSync("umount", [m]);
  rmSync(tmp, { recursive: true, force: true });
});

function mountImage(img: string, at: string): string {
  mkdirSync(at);
  execFileSync("mount", ["-t", "erofs", "-o", "loop,ro", img, at]);
  mounts.push(at);
  return at;
}

/** Every entry's path, type, mode, owner, mtime (ns), links, symlink target, and size (files only). */
function listing(dir: string): string {
  const out = execFileSync("find", [".", "-printf", "%y %m %U %G %T@ %n %s %p\\t%l\\n"], { cwd: dir, encoding: "latin1", maxBuffer: 1 << 30 });
  // Directory sizes are the filesystem's own business.
  return out
    .split("\n")
    .map((l) => (l.startsWith("d ") ? l.replace(/^(d( \S+){5}) \d+/, "$1 -") : l))
    .sort()
    .join("\n");
}


/** A plain scanner (no xattrs) so the test runs under Node; digests are made up from the path. */
function scan(path: Buffer, data: "object" | "path" = "object", links = new Map<bigint, Inode>()): Inode {
  const st: BigIntStats = lstatSync(path, { bigint: true });
  const kind = kindOf(st.mode)!;
  if (kind !== "dir" && st.nlink > 1n && links.has(st.ino)) return links.get(st.ino)!;
  const inode = inodeFromStat(st, kind, []);
  if (kind === "file") inode.size = Number(st.size);
  if (kind === "file")
    inode.data = data === "path" ? { kind: "path", path } : { kind: "object", digest: createHash("sha256").update(path).digest("hex") };
  if (kind === "symlink") inode.target = readlinkSync(path, { encoding: "buffer" }) as Buffer;
  if (kind === "chr" || kind === "blk") Object.assign(inode, { rdevMajor: Number((st.rdev >> 8n) & 0xfffn), rdevMinor: Number(st.rdev & 0xffn) });
  if (kind === "dir")
    inode.entries = (readdirSync(path, { encoding: "buffer" }) as Buffer[])
      .sort(Buffer.compare)
      .map((name) => ({ name, inode: scan(Buffer.concat([path, Buffer.from("/"), name]), data, links) }));
  if (kind !== "dir" && st.nlink > 1n) links.set(st.ino, inode);
  return inode;
}

/** getfattr's path escaping, which `setfattr --restore` reads back. */
const escapePath = (p: Buffer): string =>
  [...p].map((c) => (c <= 0x20 || c >= 0x7f || c === 0x5c ? `\\${c.toString(8).padStart(3, "0")}` : String.fromCharCode(c))).join("");

/** Writes the tree as mkcomposefs would see it: empty files with redirect + metacopy xattrs. */
function materialize(root: Inode, at: Buffer): void {
  const dump: string[] = [];
  const placed = new Map<Inode, Buffer>();
  const attrs = (p: Buffer, i: Inode) => {
    lchownSync(p, i.uid, i.gid);
    if (i.kind !== "symlink") chmodSync(p, i.perm);
    lutimesSync(p, i.mtimeSec + i.mtimeNsec / 1e9, i.mtimeSec + i.mtimeNsec / 1e9);
  };
  const visit = (i: Inode, p: Buffer) => {
    const first = placed.get(i);
    if (first) return linkSync(first, p);
    if (i.kind !== "dir") placed.set(i, p);
    switch (i.kind) {
      case "dir":
        mkdirSync(p);
        for (const e of i.entries ?? []) visit(e.inode, Buffer.concat([p, Buffer.from("/"), e.name]));
        break;
      case "file":
        writeFileSync(p, "");
        if (i.size > 0 && i.data?.kind === "object") {
          const d = i.data.digest;
          dump.push(`# file: ${escapePath(p)}\ntrusted.overlay.metacopy=0x${metacopyValue(d).toString("hex")}\ntrusted.overlay.redirect=0x${redirectValue(d).toString("hex")}\n`);
        }
        break;
      case "symlink":
        symlinkSync(i.target!, p);
        break;
      default:
        execFileSync("mknod", [p.toString("latin1"), { chr: "c", blk: "b", fifo: "p", sock: "p" }[i.kind], ...(i.kind === "chr" || i.kind === "blk" ? [`${i.rdevMajor}`, `${i.rdevMinor}`] : [])]);
    }
    attrs(p, i);
  };
  visit(root, at);
  const dumpFile = join(tmp, "xattrs.dump");
  writeFileSync(dumpFile, dump.join("\n"));
  execFileSync("setfattr", ["-h", `--restore=${dumpFile}`], { stdio: ["ignore", "ignore", "pipe"] });
  // Directory times last: creating their entries changed them.
  const fixDirs = (i: Inode, p: Buffer) => {
    if (i.kind !== "dir") return;
    for (const e of i.entries ?? []) fixDirs(e.inode, Buffer.concat([p, Buffer.from("/"), e.name]));
    attrs(p, i);
  };
  fixDirs(root, at);
}

describe("images of a real tree", () => {
  it(`stays within 1.1x of mkfs.erofs on ${SOURCE}, and encodes quickly`, async () => {
    const tree = scan(Buffer.from(SOURCE));
    const t0 = performance.now();
    const image = composefsTree(tree);
    const ours = join(tmp, "ours.erofs");
    const { bytes } = await writeErofs(image, ours, { mode: "metadata" });
    const encodeMs = performance.now() - t0;
    execFileSync("fsck.erofs", [ours]);

    const mirror = Buffer.from(join(tmp, "mirror"));
    materialize(tree, mirror);
    const theirs = join(tmp, "mkfs.erofs");
    execFileSync("mkfs.erofs", ["--quiet", theirs, mirror.toString()]);
    const mkfsBytes = statSync(theirs).size;
    const ratio = bytes / mkfsBytes;
    const files = [...new Set(walkInodes(tree))].length;
    console.log(`erofs size: ${SOURCE}: ${files} inodes, ours ${bytes} B, mkfs.erofs ${mkfsBytes} B, ratio ${ratio.toFixed(3)}, encode ${encodeMs.toFixed(0)} ms (Node)`);
    expect(ratio).toBeLessThanOrEqual(1.1);
    expect(encodeMs).toBeLessThan(15_000); // generous: shared, loaded CI hosts
    // And the kernel sees the source's metadata, entry by entry.
    expect(listing(mountImage(ours, join(tmp, "ours")))).toBe(listing(SOURCE));
  }, 900_000);

  it(`full image of ${SOURCE} matches the source under the kernel, byte for byte`, async () => {
    const img = join(tmp, "full.erofs");
    await writeErofs(scan(Buffer.from(SOURCE), "path"), img, { mode: "full" });
    execFileSync("fsck.erofs", [img]);
    const mnt = mountImage(img, join(tmp, "full"));
    expect(listing(mnt)).toBe(listing(SOURCE));
    execFileSync("diff", ["-r", "--no-dereference", mnt, SOURCE], { maxBuffer: 1 << 26 });
  }, 900_000);
});

function* walkInodes(i: Inode): Generator<Inode> {
  yield i;
  for (const e of i.entries ?? []) yield* walkInodes(e.inode);
}
