// Test fixtures: a staged sysroot built by hand (mkfs.erofs / mksquashfs and a hand-written
// deployment.json), so the boot and mount tests do not depend on `particle stage`. The composefs
// image is made the way the DESIGN field notes describe: a metadata tree whose files are sparse,
// of the real size, carrying trusted.overlay.redirect and trusted.overlay.metacopy (4-byte header
// + fs-verity digest); owner, then mode, then xattrs. Needs root (trusted.* xattrs).
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { verityDigest } from "../../runtime/src/verity/digest.ts";

export type Format = "composefs" | "erofs" | "squashfs";

export interface FixtureFile {
  path: string;
  content?: string | Buffer;
  mode?: number;
  symlink?: string;
  dir?: boolean;
}

export const DEFAULT_TREE: FixtureFile[] = [
  { path: "etc", dir: true },
  { path: "var", dir: true },
  { path: "sysroot", dir: true },
  { path: "etc/hostname", content: "particle-test\n" },
  { path: "etc/os-release", content: "ID=particle\nVERSION_ID=1\n" },
  { path: "usr/bin/hello", content: "#!/bin/sh\necho hello\n", mode: 0o755 },
  { path: "usr/share/blob.bin", content: Buffer.alloc(20000, 7) },
  { path: "usr/share/empty", content: "" },
  { path: "usr/lib/link", symlink: "../bin/hello" },
];

export function writeTree(root: string, files: FixtureFile[]): void {
  mkdirSync(root, { recursive: true });
  for (const f of files) {
    const p = join(root, f.path);
    mkdirSync(f.dir ? p : dirname(p), { recursive: true });
    if (f.dir) continue;
    if (f.symlink !== undefined) symlinkSync(f.symlink, p);
    else {
      writeFileSync(p, f.content ?? "");
      chmodSync(p, f.mode ?? 0o644);
    }
  }
}

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });

/** Copies `src` into a composefs metadata tree at `meta`, storing file contents as objects. */
function buildComposefs(src: string, meta: string, objects: string): void {
  mkdirSync(meta, { recursive: true });
  for (const name of readdirSync(src).sort()) {
    const s = join(src, name);
    const d = join(meta, name);
    const st = lstatSync(s);
    if (st.isDirectory()) {
      mkdirSync(d);
      chmodSync(d, st.mode & 0o7777);
      buildComposefs(s, d, objects);
    } else if (st.isSymbolicLink()) {
      symlinkSync(readlinkSync(s), d);
    } else if (st.size === 0) {
      writeFileSync(d, "");
      chmodSync(d, st.mode & 0o7777);
    } else {
      const data = readFileSync(s);
      const digest = verityDigest(data);
      const obj = join(objects, digest.slice(0, 2), digest.slice(2));
      mkdirSync(dirname(obj), { recursive: true });
      if (!existsSync(obj)) writeFileSync(obj, data);
      writeFileSync(d, "");
      truncateSync(d, st.size);
      chmodSync(d, st.mode & 0o7777);
      const metacopy = Buffer.concat([Buffer.from([0, 36, 0, 1]), Buffer.from(digest, "hex")]);
      run("setfattr", ["-n", "trusted.overlay.redirect", "-v", `/${digest.slice(0, 2)}/${digest.slice(2)}`, d]);
      run("setfattr", ["-n", "trusted.overlay.metacopy", "-v", `0x${metacopy.toString("hex")}`, d]);
    }
  }
}

export interface Fixture {
  sysroot: string;
  id: string;
  format: Format;
  digest: string;
  image: string;
}

/** Stages `files` as deployment `id` into `sysroot` (created if missing). */
export function stageFixture(sysroot: string, id: string, format: Format, files: FixtureFile[] = DEFAULT_TREE): Fixture {
  const p = join(sysroot, "particle");
  for (const d of ["objects", "images", "deploy", "var", "tmp"]) mkdirSync(join(p, d), { recursive: true });
  const work = join(p, "tmp", `fixture-${id}`);
  const tree = join(work, "tree");
  writeTree(tree, files);
  let img = join(work, "image");
  if (format === "squashfs") {
    run("mksquashfs", [tree, img, "-noappend", "-all-root", "-quiet", "-mkfs-time", "0", "-all-time", "0"]);
  } else if (format === "erofs") {
    run("mkfs.erofs", ["-T0", "--all-root", "--quiet", img, tree]);
  } else {
    const meta = join(work, "meta");
    buildComposefs(tree, meta, join(p, "objects"));
    run("mkfs.erofs", ["-T0", "--all-root", "--quiet", img, meta]);
  }
  const bytes = readFileSync(img);
  const digest = format === "squashfs" ? createHash("sha256").update(bytes).digest("hex") : verityDigest(bytes);
  const image = join(p, "images", `${digest}.${format === "squashfs" ? "squashfs" : "erofs"}`);
  copyFileSync(img, image);
  run("rm", ["-rf", work]);
  const deploy = join(p, "deploy", id);
  mkdirSync(deploy, { recursive: true });
  const manifest = {
    schema: 1, id, format, imageDigest: digest, source: "fixture", created: "2026-01-01T00:00:00Z",
    files: files.filter((f) => !f.dir).length, bytes: 0,
  };
  writeFileSync(join(deploy, "deployment.json"), JSON.stringify(manifest, null, 2) + "\n");
  return { sysroot, id, format, digest, image };
}
