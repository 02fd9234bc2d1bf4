// Host integration tier for the store: real trees, the real kernel's EROFS/overlayfs/squashfs, the
// compiled particle binary. Needs root.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync, chownSync } from "node:fs";
import { join } from "node:path";
import { makeFixture, deterministicBytes } from "./lib/fixture.ts";
import { compareTrees } from "./lib/treecmp.ts";
import { Mounts, particle, particleOk, stageJson } from "./lib/particle.ts";

const base = mkdtempSync("/var/tmp/particle-host-");
const src = join(base, "src");
const sysroot = join(base, "sysroot");
const mnt = join(base, "mnt");

const mounts = new Mounts(sysroot);
const mounted = mounts.live;
const { mount: mountDeployment, unmount } = mounts;

beforeAll(() => {
  makeFixture(src, { huge: true, socket: true });
});

// A 0:0 character device is an overlay whiteout. composefs escapes it the way composefs does: the
// mount shows an empty file marked trusted.overlay.whiteout (its parent marked .whiteouts), which
// acts as a whiteout again when this root is the lower layer of another overlay (/etc,
// overlayroot). Those entries are checked on their own, the rest must match exactly.
const composefsWhiteout = (p: string) => p === "/whiteout-like" || p === "/";
function expectEscapedWhiteout(m: string): void {
  const st = statSync(join(m, "whiteout-like"));
  expect(st.isFile()).toBe(true);
  expect(st.size).toBe(0);
  const x = execFileSync("getfattr", ["-d", "-m", "-", "-e", "hex", "--absolute-names", join(m, "whiteout-like")]).toString();
  expect(x).toContain("trusted.overlay.whiteout=");
  const rootX = execFileSync("getfattr", ["-d", "-m", "-", "-e", "hex", "--absolute-names", m]).toString();
  expect(rootX).toContain("trusted.overlay.whiteouts=");
}

afterAll(() => {
  for (const m of mounted.reverse()) particle(["unmount", m]);
  execFileSync("sh", ["-c", `grep -o ' ${base}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null; true`]);
  rmSync(base, { recursive: true, force: true });
});

describe("particle stage (composefs)", () => {
  let first: Record<string, any>;

  it("stages the tree and reports what it added", () => {
    first = stageJson(`dir:${src}`, sysroot);
    expect(first).toMatchObject({ id: "1", format: "composefs" });
    expect(first.imageDigest).toMatch(/^[0-9a-f]{64}$/);
    const distinct = execFileSync("sh", ["-c", `find "${src}" -type f -size +0 ! -name huge-sparse -print0 | xargs -0 sha256sum | cut -d' ' -f1 | sort -u | wc -l`]).toString().trim();
    // + the 5 GiB sparse file, left out of sha256sum (it would read 5 GiB of holes).
    expect(first.objectsAdded).toBe(Number(distinct) + 1);
    expect(existsSync(join(sysroot, "particle/images", `${first.imageDigest}.erofs`))).toBe(true);
    expect(existsSync(join(sysroot, "particle/deploy/1/deployment.json"))).toBe(true);
    expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
  });

  it("stores identical content once, and keeps sparse objects sparse", () => {
    // hello and dir/same-as-hello share one object; 600 entries of "many" share few contents.
    const objects = readdirSync(join(sysroot, "particle/objects")).flatMap((d) => readdirSync(join(sysroot, "particle/objects", d)));
    expect(objects.length).toBe(first.objectsAdded);
    const du = Number(execFileSync("du", ["-sk", join(sysroot, "particle/objects")]).toString().split("\t")[0]);
    expect(du * 1024).toBeLessThan(64 * 1024 * 1024); // the 5 GiB sparse file costs nothing like 5 GiB
  });

  it("mounts with the real kernel and equals the source byte for byte and attribute for attribute", () => {
    const m = join(mnt, "c1");
    mountDeployment("1", m);
    const findmnt = execFileSync("findmnt", ["-J", "-o", "FSTYPE,OPTIONS", m]).toString();
    expect(findmnt).toContain("overlay");
    expect(findmnt).toMatch(/metacopy=on/);
    const diffs = compareTrees(src, m, { xattrs: true, skip: composefsWhiteout });
    expect(diffs).toEqual([]);
    expectEscapedWhiteout(m);
    unmount(m);
  });

  it("is reproducible: restaging the same tree gives the same image and adds nothing", () => {
    const again = stageJson(`dir:${src}`, sysroot);
    expect(again.id).toBe("2");
    expect(again.imageDigest).toBe(first.imageDigest);
    expect(again.objectsAdded).toBe(0);
    expect(again.bytesAdded).toBe(0);
    // Unchanged files are not re-read: their digests come from the devino cache.
    expect(again.filesReused).toBe(again.files);
  });

  it("restaging after a change adds only the changed object and one image", () => {
    appendFileSync(join(src, "dir/sub/deeper/block-4096"), "changed");
    const third = stageJson(`dir:${src}`, sysroot);
    expect(third.objectsAdded).toBe(1);
    expect(third.imageDigest).not.toBe(first.imageDigest);
    expect(third.filesReused).toBe(third.files - 1);
    const img = statSync(join(sysroot, "particle/images", `${third.imageDigest}.erofs`)).size;
    expect(third.bytesAdded).toBe(4096 + 7 + img);
  });

  // A re-stage does not list the xattrs of a file that had none and whose stamp (ctime included)
  // is unchanged. setxattr moves ctime, so an xattr added or removed since is seen.
  it("restaging sees an xattr added to a file and taken away again, with nothing else about it changed", () => {
    const file = join(src, "dir/sub/random-1M+1");
    const before = stageJson(`dir:${src}`, sysroot);
    execFileSync("setfattr", ["-n", "user.added", "-v", "later", file]);
    const added = stageJson(`dir:${src}`, sysroot);
    expect(added.objectsAdded).toBe(0);
    expect(added.imageDigest).not.toBe(before.imageDigest);
    const m = join(mnt, "xattr-added");
    mountDeployment(added.id, m);
    expect(execFileSync("getfattr", ["-n", "user.added", "--only-values", join(m, "dir/sub/random-1M+1")]).toString()).toBe("later");
    expect(compareTrees(src, m, { xattrs: true, skip: composefsWhiteout })).toEqual([]);
    unmount(m);
    // Staged again unchanged, the file is known to have xattrs: they are listed, and kept.
    expect(stageJson(`dir:${src}`, sysroot).imageDigest).toBe(added.imageDigest);
    execFileSync("setfattr", ["-x", "user.added", file]);
    const removed = stageJson(`dir:${src}`, sysroot);
    expect(removed.imageDigest).toBe(before.imageDigest);
  });

  it("verify passes, then reports a corrupted object by name and exits non-zero", () => {
    expect(particle(["verify", "--sysroot", sysroot]).code).toBe(0);
    const digest = execFileSync("fsverity", ["digest", "--compact", join(src, "dir/sub/random-1M+1")]).toString().trim();
    const obj = join(sysroot, "particle/objects", digest.slice(0, 2), digest.slice(2));
    const saved = readFileSync(obj);
    writeFileSync(obj, Buffer.concat([saved.subarray(0, 100), Buffer.from("X"), saved.subarray(101)]));
    const r = particle(["verify", "--sysroot", sysroot]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain(obj);
    expect(r.stdout).toContain("digest mismatch");
    writeFileSync(obj, saved);
    expect(particle(["verify", "1", "--sysroot", sysroot]).code).toBe(0);
  });

  // The scan holds one directory open per level down to OPEN_DEPTH (64) and reads deeper ones by
  // whole path: both ways must give the same tree.
  it("stages a tree deeper than the scan holds directories open, equal to the source", () => {
    const deep = join(base, "deep");
    let d = deep;
    for (let i = 0; i < 80; i++) {
      d = join(d, `d${i}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `f${i}`), `level ${i}\n`);
      if (i % 10 === 0) execFileSync("setfattr", ["-n", "user.level", "-v", String(i), d]);
    }
    execFileSync("ln", ["-s", "../f78", join(d, "up")]);
    const root = join(base, "sys-deep");
    const r = stageJson(`dir:${deep}`, root);
    const m = join(mnt, "deep");
    mountDeployment(r.id, m, root);
    expect(compareTrees(deep, m, { xattrs: true, skip: (p) => ["/etc", "/var", "/sysroot"].includes(p) })).toEqual([]);
    expect(readFileSync(join(m, ...Array.from({ length: 80 }, (_, i) => `d${i}`), "f79"), "utf8")).toBe("level 79\n");
    unmount(m);
  });

  it("is also reachable as particle-stage", () => {
    const r = particle(["dir:" + join(src, "dir"), "--sysroot", join(base, "alias"), "--json", "--version", "7.1"], { argv0: "particle-stage" });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).id).toBe("1");
    // stage's own --version (not the program's) lands in the manifest.
    expect(JSON.parse(readFileSync(join(base, "alias/particle/deploy/1/deployment.json"), "utf8")).version).toBe("7.1");
    expect(particle(["--version"]).stdout).toMatch(/^particle \d+\.\d+\.\d+/);
  });
});

describe("fallback formats", () => {
  for (const format of ["erofs", "squashfs"] as const) {
    it(`${format}: stages one image and mounts equal to the source`, () => {
      const root = join(base, `sys-${format}`);
      const r = stageJson(`dir:${src}`, root, ["--format", format]);
      expect(r.format).toBe(format);
      expect(r.objectsAdded).toBe(0);
      // The 5 GiB sparse file keeps its holes: the space check and the image count its one written block.
      if (format === "erofs") expect(r.bytesAdded).toBeLessThan(256 << 20);
      const m = join(mnt, format);
      mountDeployment(r.id, m, root);
      // squashfs has no sockets' xattrs issue, but stores mtimes in seconds only.
      const diffs = compareTrees(src, m, {
        xattrs: true,
        ignoreMtime: format === "squashfs" ? () => true : undefined,
        skip: format === "squashfs" ? (p) => p.startsWith("/whiteout-like") : undefined,
      });
      expect(diffs).toEqual([]);
      unmount(m);
      expect(particle(["verify", "--sysroot", root]).code).toBe(0);
    });
  }
});

describe("tarball sources", () => {
  for (const [name, flag] of [["plain", ""], ["gzip", "--gzip"], ["zstd", "--zstd"]] as const) {
    it(`stages a ${name} tarball`, () => {
      const tarball = join(base, `tree-${name}.tar`);
      const args = ["--create", "--file", tarball, "--xattrs", "--xattrs-include=*", "--numeric-owner", "--directory", src,
        "--exclude=./socket", "--exclude=./huge-sparse", "--sparse", "."];
      if (flag) args.unshift(flag);
      execFileSync("tar", args, { stdio: "pipe" });
      const root = join(base, `sys-tar-${name}`);
      const r = stageJson(`tar:${tarball}`, root);
      const m = join(mnt, `tar-${name}`);
      mountDeployment(r.id, m, root);
      const diffs = compareTrees(src, m, { xattrs: true, skip: (p) => p === "/socket" || p === "/huge-sparse" || composefsWhiteout(p) });
      expect(diffs).toEqual([]);
      expectEscapedWhiteout(m);
      unmount(m);
    });
  }
});

describe("--consume (the tree is given away: its files become the objects)", () => {
  it("gives the same image as a copying stage, links instead of copying, and removes the tree", () => {
    const ref = join(base, "consume-ref");
    const give = join(base, "consume-give");
    for (const d of [ref, give]) execFileSync("cp", ["-a", src, d]);
    const copied = stageJson(`dir:${ref}`, join(base, "sys-consume-ref"));
    const root = join(base, "sys-consume");
    const inoBefore = statSync(join(give, "hello")).ino;
    const r = stageJson(`dir:${give}`, root, ["--consume"]);
    expect(r.imageDigest).toBe(copied.imageDigest);
    expect(r.objectsAdded).toBe(copied.objectsAdded);
    expect(existsSync(give)).toBe(false);
    // The object of "hello" is the very inode the tree had, now the store's: root, 0400.
    const objects = join(root, "particle/objects");
    const inodes = readdirSync(objects).flatMap((d) => readdirSync(join(objects, d)).map((n) => statSync(join(objects, d, n))));
    const hello = inodes.find((st) => st.ino === inoBefore);
    expect(hello).toBeDefined();
    expect(hello!.mode & 0o7777).toBe(0o400);
    expect(hello!.uid).toBe(0);
    expect(inodes.every((st) => (st.mode & 0o7777) === 0o400)).toBe(true);
    const m = join(mnt, "consumed");
    mountDeployment(r.id, m, root);
    expect(compareTrees(ref, m, { xattrs: true, skip: composefsWhiteout })).toEqual([]);
    unmount(m);
  });

  it("is refused for a tarball or an image format other than composefs, and the tree stays", () => {
    const give = join(base, "consume-refused");
    execFileSync("cp", ["-a", join(src, "dir"), give]);
    const r = particle(["stage", `dir:${give}`, "--consume", "--format", "erofs", "--sysroot", join(base, "sys-consume-refused"), "--json"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--consume: only a dir: source staged as composefs/);
    expect(existsSync(give)).toBe(true);
  });
});

describe("bad input leaves the store valid", () => {
  const root = join(base, "sys-bad");
  const small = join(base, "small");

  function storeState(r: string) {
    const deploy = existsSync(join(r, "particle/deploy")) ? readdirSync(join(r, "particle/deploy")).sort() : [];
    const tmp = existsSync(join(r, "particle/tmp")) ? readdirSync(join(r, "particle/tmp")) : [];
    return { deploy, tmp };
  }

  beforeAll(() => {
    mkdirSync(small, { recursive: true });
    writeFileSync(join(small, "a"), "a\n");
    stageJson(`dir:${small}`, root);
  });

  for (const format of ["composefs", "erofs", "squashfs"]) {
    it(`${format}: a tree without /etc, /var and /sysroot gets empty ones (particle-boot mounts there)`, () => {
      const r = stageJson(`dir:${small}`, join(base, `sys-mp-${format}`), ["--format", format]);
      const m = join(mnt, `mp-${format}`);
      mountDeployment(r.id, m, join(base, `sys-mp-${format}`));
      expect(readdirSync(m).sort()).toEqual(["a", "etc", "sysroot", "var"]);
      unmount(m);
    });
  }

  it("a missing source names it and changes nothing", () => {
    const r = particle(["stage", `dir:${base}/nope`, "--sysroot", root]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${base}/nope`);
    expect(r.stderr).toMatch(/no such directory/);
    expect(storeState(root)).toEqual({ deploy: ["1"], tmp: [] });
  });

  it("an unknown source scheme and an unknown format are refused", () => {
    const a = particle(["stage", `http://example/x`, "--sysroot", root]);
    expect(a.code).not.toBe(0);
    expect(a.stderr).toMatch(/unknown scheme "http"/);
    const b = particle(["stage", small, "--sysroot", root, "--format", "zip"]);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--format zip/);
  });

  it("an unreadable file names it and changes nothing", () => {
    const tree = join(base, "unreadable");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "ok"), "ok\n");
    writeFileSync(join(tree, "secret"), "secret\n");
    chownSync(join(tree, "secret"), 1234, 1234);
    chmodSync(join(tree, "secret"), 0o000);
    // Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH is bound by file modes like anyone else.
    const r = particle(["stage", `dir:${tree}`, "--sysroot", root], {
      wrap: ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"],
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(join(tree, "secret"));
    expect(storeState(root)).toEqual({ deploy: ["1"], tmp: [] });
  });

  it("a file that changes while it is staged is refused", async () => {
    const tree = join(base, "changing");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "big"), deterministicBytes(64 << 20, 3));
    const writer = spawn("sh", ["-c", `while :; do echo more >> ${join(tree, "big")}; sleep 0.002; done`], { stdio: "ignore" });
    try {
      const r = particle(["stage", `dir:${tree}`, "--sysroot", root]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/changed during staging/);
      expect(r.stderr).toContain(join(tree, "big"));
    } finally {
      writer.kill();
    }
    expect(storeState(root)).toEqual({ deploy: ["1"], tmp: [] });
  });

  it("a full disk gives a clear error and no half-made deployment", () => {
    const img = join(base, "tiny.img");
    const fsdir = join(base, "tiny");
    execFileSync("truncate", ["-s", "48M", img]);
    execFileSync("mkfs.ext4", ["-q", "-F", img]);
    mkdirSync(fsdir, { recursive: true });
    execFileSync("mount", ["-o", "loop", img, fsdir]);
    mounted.push(fsdir);
    try {
      stageJson(`dir:${small}`, fsdir);
      const tree = join(base, "toobig");
      mkdirSync(tree, { recursive: true });
      for (let i = 0; i < 8; i++) writeFileSync(join(tree, `f${i}`), deterministicBytes(8 << 20, 100 + i));
      const r = particle(["stage", `dir:${tree}`, "--sysroot", fsdir]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/no space left/);
      expect(r.stderr).toMatch(/bytes free/);
      expect(storeState(fsdir)).toEqual({ deploy: ["1"], tmp: [] });
      expect(particle(["verify", "--sysroot", fsdir]).code).toBe(0);
      // A full erofs image needs the whole tree's bytes: refused before anything is written.
      const pre = particle(["stage", `dir:${tree}`, "--sysroot", fsdir, "--format", "erofs"]);
      expect(pre.code).not.toBe(0);
      expect(pre.stderr).toMatch(/not enough free space, nothing was written/);
      expect(pre.stderr).toMatch(new RegExp(`sysroot ${fsdir}.*needs [0-9.]+ MiB.*only [0-9.]+ MiB is free`));
      expect(storeState(fsdir)).toEqual({ deploy: ["1"], tmp: [] });
    } finally {
      execFileSync("umount", [fsdir]);
      mounted.splice(mounted.indexOf(fsdir), 1);
    }
  });

  it("removes what a crashed stage left in tmp/", () => {
    mkdirSync(join(root, "particle/tmp/stage-crashed/objects"), { recursive: true });
    writeFileSync(join(root, "particle/tmp/stage-crashed/objects/0"), "garbage");
    stageJson(`dir:${small}`, root);
    expect(readdirSync(join(root, "particle/tmp"))).toEqual([]);
  });

  it("two writers never run at once: the second waits and says for whom", async () => {
    const tree = join(base, "lockbig");
    mkdirSync(tree, { recursive: true });
    for (let i = 0; i < 4; i++) writeFileSync(join(tree, `f${i}`), deterministicBytes(32 << 20, 200 + i));
    const runAsync = () => new Promise<{ code: number; stderr: string }>((res) => {
      const p = spawn(join(__dirname, "../../dist/particle"), ["stage", `dir:${tree}`, "--sysroot", root]);
      let stderr = "";
      p.stderr.on("data", (d) => (stderr += d));
      p.on("close", (code) => res({ code: code ?? -1, stderr }));
    });
    const [a, b] = await Promise.all([runAsync(), new Promise((r) => setTimeout(r, 150)).then(runAsync)]);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(a.stderr + b.stderr).toMatch(/waiting for the store lock held by pid \d+: particle stage/);
  });
});
