// The writer's images under the real kernel: fsck.erofs, loop mounts, and composefs through overlayfs.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync, writeSync, ftruncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { composefsTree } from "../../runtime/src/composefs/encode.ts";
import { MODE_TYPE } from "../../runtime/src/erofs/format.ts";
import { dir, file, sampleTree, special, xattr } from "../../runtime/src/erofs/sample.ts";
import { writeErofs } from "../../runtime/src/erofs/writer.ts";
import { walk, type Inode } from "../../runtime/src/tree/model.ts";

const run = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: "latin1", maxBuffer: 1 << 28, stdio: ["ignore", "pipe", "pipe"] });

const tmp = mkdtempSync(join(tmpdir(), "erofs-host-"));
const mounts: string[] = [];
function mount(args: string[], target: string): string {
  mkdirSync(target, { recursive: true });
  run("mount", [...args, target]);
  mounts.push(target);
  return target;
}
afterAll(() => {
  for (const m of mounts.reverse()) {
    try {
      run("umount", [m]);
    } catch {
      run("umount", ["-l", m]);
    }
  }
  rmSync(tmp, { recursive: true, force: true });
});

/** `getfattr -R` output as path → sorted ["name", "hex value"] pairs (paths relative, raw bytes as latin1). */
function getfattrTree(root: string): Map<string, string[][]> {
  const out = run("getfattr", ["-R", "-d", "-m", "-", "-h", "--absolute-names", "-e", "hex", root]);
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))).replace(/\\\\/g, "\\");
  const m = new Map<string, string[][]>();
  let cur: string[][] | undefined;
  for (const line of out.split("\n")) {
    if (line.startsWith("# file: ")) {
      cur = [];
      m.set(unescape(line.slice(8)).slice(root.length), cur);
    } else if (cur && line.includes("=")) {
      const i = line.indexOf("=");
      const v = line.slice(i + 1);
      cur.push([unescape(line.slice(0, i)), v.startsWith("0x") ? v.slice(2) : ""]);
    }
  }
  for (const v of m.values()) v.sort();
  return m;
}

const major = (rdev: bigint) => Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
const minor = (rdev: bigint) => Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));

interface Expect {
  content: boolean;
  /** Paths whose xattrs differ from the model (checked separately). */
  skipXattrs?: Set<string>;
}

/** Compares a mounted tree with the model, path by path, byte for byte. */
function expectMountMatches(mnt: string, root: Inode, opts: Expect): void {
  const xattrs = getfattrTree(mnt);
  const links = new Map<Inode, number>();
  const inos = new Map<Inode, bigint>();
  for (const [, i] of walk(root)) if (i.kind !== "dir") links.set(i, (links.get(i) ?? 0) + 1);
  let checked = 0;
  for (const [rel, model] of walk(root)) {
    const where = rel.toString("latin1") || "/";
    const p = Buffer.concat([Buffer.from(mnt), rel]);
    const st = lstatSync(p, { bigint: true });
    expect(Number(st.mode), where).toBe(MODE_TYPE[model.kind] | model.perm);
    expect([Number(st.uid), Number(st.gid)], where).toEqual([model.uid, model.gid]);
    expect(st.mtimeNs, where).toBe(BigInt(model.mtimeSec) * 1_000_000_000n + BigInt(model.mtimeNsec));
    if (model.kind === "dir") {
      const subdirs = (model.entries ?? []).filter((e) => e.inode.kind === "dir").length;
      expect(Number(st.nlink), where).toBe(2 + subdirs);
      const names = (readdirSync(p, { encoding: "buffer" }) as Buffer[]).map((n) => n.toString("latin1")).sort();
      expect(names, where).toEqual((model.entries ?? []).map((e) => e.name.toString("latin1")).sort());
    } else {
      expect(Number(st.nlink), where).toBe(links.get(model));
      const first = inos.get(model);
      if (first !== undefined) expect(st.ino, `${where} shares its inode`).toBe(first);
      inos.set(model, st.ino);
    }
    if (model.kind === "file") {
      expect(Number(st.size), where).toBe(model.size);
      if (opts.content && model.data?.kind === "bytes")
        expect(createHash("sha256").update(readFileSync(p)).digest("hex"), where).toBe(createHash("sha256").update(model.data.bytes).digest("hex"));
    }
    if (model.kind === "symlink") expect((readlinkSync(p, { encoding: "buffer" }) as Buffer).equals(model.target!), where).toBe(true);
    if (model.kind === "chr" || model.kind === "blk") expect([major(st.rdev), minor(st.rdev)], where).toEqual([model.rdevMajor, model.rdevMinor]);
    if (!opts.skipXattrs?.has(where)) {
      const want = model.xattrs.map((x) => [x.name.toString("latin1"), x.value.toString("hex")]).sort();
      expect(xattrs.get(rel.toString("latin1")) ?? [], where).toEqual(want);
    }
    checked++;
  }
  expect(checked).toBeGreaterThan(700);
}

/** mount(2) with the image file itself as source: the kernel's file-backed EROFS mount (>= 6.12), no loop device. */
function mountFileBacked(img: string, target: string): string {
  mkdirSync(target, { recursive: true });
  const py = "import ctypes,os,sys\nlibc=ctypes.CDLL('libc.so.6',use_errno=True)\n" +
    "r=libc.mount(sys.argv[1].encode(),sys.argv[2].encode(),b'erofs',1,None)\n" +
    "sys.exit(os.strerror(ctypes.get_errno()) if r else 0)";
  run("python3", ["-c", py, img, target]);
  mounts.push(target);
  expect(run("findmnt", ["-n", "-o", "SOURCE", target]).trim()).toBe(img);
  return target;
}

function fsck(img: string): void {
  run("fsck.erofs", [img]);
}

describe("erofs images under the kernel", () => {
  it("full mode: passes fsck.erofs, mounts, and every file, attribute and byte matches", async () => {
    const root = sampleTree();
    const img = join(tmp, "full.erofs");
    await writeErofs(root, img, { mode: "full" });
    fsck(img);
    run("fsck.erofs", [`--extract=${join(tmp, "extracted")}`, img]);
    const mnt = mount(["-t", "erofs", "-o", "loop,ro", img], join(tmp, "full"));
    expectMountMatches(mnt, root, { content: true });
    expectMountMatches(mountFileBacked(img, join(tmp, "full-file-backed")), root, { content: true });
  });

  it("metadata mode: passes fsck.erofs, mounts, files report their real size (> 4 GiB too)", async () => {
    const root = sampleTree();
    root.entries!.push({ name: Buffer.from("zz-huge"), inode: { ...file(Buffer.alloc(0)), size: 5 * 2 ** 30 + 1, data: { kind: "object", digest: "ab".repeat(32) } } });
    const img = join(tmp, "meta.erofs");
    const { bytes } = await writeErofs(root, img, { mode: "metadata" });
    expect(bytes).toBeLessThan(200_000);
    fsck(img);
    const mnt = mount(["-t", "erofs", "-o", "loop,ro", img], join(tmp, "meta"));
    expectMountMatches(mnt, root, { content: false });
    expect(statSync(join(mnt, "zz-huge")).size).toBe(5 * 2 ** 30 + 1);
    const fb = mountFileBacked(img, join(tmp, "meta-file-backed"));
    expectMountMatches(fb, root, { content: false });
  });

  it("full mode stores a sparse 5 GiB file's holes as null chunks", async () => {
    const src = join(tmp, "sparse.src");
    const size = 5 * 2 ** 30 + 4097;
    const fd = openSync(src, "w");
    ftruncateSync(fd, size);
    const marks: [number, string][] = [[0, "head"], [3 * 2 ** 30 + 12345, "middle"], [size - 4, "tail"]];
    for (const [pos, s] of marks) writeSync(fd, s, pos);
    closeSync(fd);
    const root = dir([["sparse", { ...file(Buffer.alloc(0)), size, data: { kind: "path", path: Buffer.from(src) } }]]);
    const img = join(tmp, "sparse.erofs");
    const { bytes } = await writeErofs(root, img, { mode: "full" });
    expect(bytes).toBeLessThan(4 << 20); // three data chunks and the chunk map, not 5 GiB
    fsck(img);
    const mnt = mount(["-t", "erofs", "-o", "loop,ro", img], join(tmp, "sparse"));
    const f = join(mnt, "sparse");
    expect(statSync(f).size).toBe(size);
    const rfd = openSync(f, "r");
    try {
      for (const [pos, s] of marks) {
        const b = Buffer.alloc(s.length + 8);
        const from = Math.max(0, pos - 4);
        const n = readSync(rfd, b, 0, b.length, from);
        expect(n).toBeGreaterThanOrEqual(pos - from + s.length);
        expect(b.subarray(pos - from, pos - from + s.length).toString(), `at ${pos}`).toBe(s);
        expect(b.subarray(0, pos - from).equals(Buffer.alloc(pos - from)), `zeros before ${pos}`).toBe(true);
      }
      const hole = Buffer.alloc(1 << 20, 1);
      readSync(rfd, hole, 0, hole.length, 2 * 2 ** 30);
      expect(hole.equals(Buffer.alloc(1 << 20))).toBe(true);
    } finally {
      closeSync(rfd);
    }
  });

  it("composefs: overlayfs with the object store as data-only lower shows the original tree", async () => {
    const objects = join(tmp, "objects");
    const digests = new Map<Inode, string>();
    const toObjects = (i: Inode, seen = new Map<Inode, Inode>()): Inode => {
      const hit = seen.get(i);
      if (hit) return hit;
      const c: Inode = { ...i };
      seen.set(i, c);
      if (i.kind === "file" && i.data?.kind === "bytes") {
        // Any 32 bytes will do as "digest" without fs-verity; sha256 keeps them unique.
        const d = createHash("sha256").update(i.data.bytes).digest("hex");
        mkdirSync(join(objects, d.slice(0, 2)), { recursive: true });
        writeFileSync(join(objects, d.slice(0, 2), d.slice(2)), i.data.bytes);
        c.data = { kind: "object", digest: d };
        digests.set(i, d);
      }
      if (i.entries) c.entries = i.entries.map((e) => ({ name: e.name, inode: toObjects(e.inode, seen) }));
      return c;
    };
    const root = sampleTree();
    root.entries!.push({
      name: Buffer.from("zz-whiteouts"),
      inode: dir([["gone", special("chr", 0, 0, { perm: 0o600 })], ["kept", file(Buffer.from("kept"), { xattrs: [xattr("trusted.overlay.redirect", "/elsewhere")] })]]),
    });
    const image = composefsTree(toObjects(root));
    const img = join(tmp, "composefs.erofs");
    await writeErofs(image, img, { mode: "metadata" });
    fsck(img);
    const meta = mount(["-t", "erofs", "-o", "loop,ro", img], join(tmp, "cfs-meta"));
    const ovl = mount(["-t", "overlay", "overlay", "-o", `ro,metacopy=on,redirect_dir=on,lowerdir=${meta}::${objects}`], join(tmp, "cfs"));
    // The mount matches the source tree, contents read through the objects; the whiteout shows as
    // an empty file whose xattrs (and its directory's) are checked below.
    const whDir = root.entries!.find((e) => e.name.toString() === "zz-whiteouts")!;
    whDir.inode.entries = whDir.inode.entries!.map((e) =>
      e.name.toString() === "gone" ? { name: e.name, inode: file(Buffer.alloc(0), { perm: 0o600 }) } : e,
    );
    expectMountMatches(ovl, root, { content: true, skipXattrs: new Set(["/zz-whiteouts", "/zz-whiteouts/gone"]) });
    // The tree's own trusted.overlay.* xattrs come back under their original names.
    const xs = getfattrTree(ovl);
    expect(xs.get("/trusted")).toEqual([
      ["trusted.foo", Buffer.from("bar").toString("hex")],
      ["trusted.overlay.opaque", Buffer.from("y").toString("hex")],
    ]);
    expect(xs.get("/zz-whiteouts/kept")).toEqual([["trusted.overlay.redirect", Buffer.from("/elsewhere").toString("hex")]]);
    expect(readFileSync(join(ovl, "zz-whiteouts/kept"), "utf8")).toBe("kept");
    // The escaped whiteout is visible (as an overlay "xwhiteout" for mounts stacked on top).
    const gone = lstatSync(join(ovl, "zz-whiteouts/gone"));
    expect(gone.isFile()).toBe(true);
    expect(gone.size).toBe(0);
    expect(xs.get("/zz-whiteouts/gone")).toEqual([["trusted.overlay.whiteout", ""], ["user.overlay.whiteout", ""]]);
    expect(xs.get("/zz-whiteouts")!.map(([n]) => n)).toEqual(["trusted.overlay.opaque", "trusted.overlay.whiteouts", "user.overlay.opaque", "user.overlay.whiteouts"]);
    expect(readdirSync(join(ovl, "zz-whiteouts")).sort()).toEqual(["gone", "kept"]);
    expect(digests.size).toBeGreaterThan(700);
  });
});
