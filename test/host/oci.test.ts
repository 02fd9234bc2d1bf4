// Host tier for OCI images: layouts built here from test trees (no network), staged through the
// real skopeo and the compiled particle, mounted with the real kernel and compared with the tree
// the layers should merge into. Needs root.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, chmodSync, chownSync } from "node:fs";
import { join } from "node:path";
import { makeFixture, deterministicBytes } from "./lib/fixture.ts";
import { compareTrees } from "./lib/treecmp.ts";
import { Mounts, particle, particleOk, stageJson } from "./lib/particle.ts";
import { tarBytes, type TarItem } from "./lib/oci-tar.ts";
import { blobPathOf, tarDir, writeImage } from "./lib/oci-layout.ts";

const base = mkdtempSync("/var/tmp/particle-oci-");
const src = join(base, "src");
const expected = join(base, "expected");
const layout = join(base, "layout");
const sysroot = join(base, "sysroot");
const mnt = join(base, "mnt");
const T = 1_700_000_000;
const CMDLINE = ["--cmdline", "particle.deploy=1"];
// The host is not booted from particle: name the tracked deployment (staging then writes no boot entry).
const FROM = ["--from", "1"];

const mounts = new Mounts(sysroot);
const mounted = mounts.live;
const { mount: mountDeployment, unmount } = mounts;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }).toString();
const deployments = (root = sysroot) => (existsSync(join(root, "particle/deploy")) ? readdirSync(join(root, "particle/deploy")).sort() : []);

/** Writes a file into the expected tree the way a layer entry describes it. */
function put(rel: string, data: Buffer | string, mode = 0o644, uid = 0, gid = 0): void {
  const p = join(expected, rel);
  writeFileSync(p, data);
  chownSync(p, uid, gid);
  chmodSync(p, mode);
  utimesSync(p, T, T);
}

const bigContent = deterministicBytes(2 * 1024 * 1024 + 3, 99);
const longName = "d".repeat(120);

// Layer 2 (zstd): whiteouts of a file, an opaque directory, files replaced (one breaks a hardlink
// pair), a new directory with an xattr. Parents are implied: the lower directories keep their attributes.
const layer2: TarItem[] = [
  { path: ".wh.hello", data: "" },
  { path: "many/.wh..wh..opq", data: "" },
  { path: "many/new-only", data: "new\n", mtime: T },
  { path: "dir/sub/random-1M+1", data: bigContent, mode: 0o640, uid: 5, gid: 6, mtime: T },
  { path: "linked", data: "relinked\n", mtime: T },
  { path: "added/", type: "dir", mode: 0o700, mtime: T },
  { path: "added/file", data: "added\n", mtime: T, xattrs: { "user.layer2": "yes" } },
];
// Layer 3 (uncompressed): a hardlink to a file of layer 1, a GNU long name, a whiteout of a
// directory, a file replaced by a directory in the same layer.
const layer3: TarItem[] = [
  { path: "dir/link-to-lower", type: "link", linkname: "linked-2" },
  { path: `added/${longName}`, data: "long\n", mtime: T, longName: "gnu" },
  { path: "dir/sub/.wh.deeper", data: "" },
  { path: ".wh.empty", data: "" },
  { path: "empty/", type: "dir", mode: 0o751, mtime: T },
  { path: "empty/inside", data: "inside\n", mtime: T },
];

function applyExpected(): void {
  rmSync(join(expected, "hello"));
  for (const n of readdirSync(join(expected, "many"))) rmSync(join(expected, "many", n));
  put("many/new-only", "new\n");
  rmSync(join(expected, "dir/sub/random-1M+1"));
  put("dir/sub/random-1M+1", bigContent, 0o640, 5, 6);
  rmSync(join(expected, "linked"));
  put("linked", "relinked\n");
  mkdirSync(join(expected, "added"));
  chmodSync(join(expected, "added"), 0o700);
  put("added/file", "added\n");
  sh("setfattr", ["-n", "user.layer2", "-v", "yes", join(expected, "added/file")]);
  linkSync(join(expected, "linked-2"), join(expected, "dir/link-to-lower"));
  put(`added/${longName}`, "long\n");
  rmSync(join(expected, "dir/sub/deeper"), { recursive: true });
  rmSync(join(expected, "empty"));
  mkdirSync(join(expected, "empty"));
  chmodSync(join(expected, "empty"), 0o751);
  put("empty/inside", "inside\n");
}

let v1Digest = "";

beforeAll(() => {
  makeFixture(src);
  // A 0:0 device is an overlay whiteout on the mount side; the store test covers its escaping.
  rmSync(join(src, "whiteout-like"));
  sh("cp", ["-a", src, expected]);
  applyExpected();
  v1Digest = writeImage(layout, {
    tag: "v1",
    labels: { "org.opencontainers.image.version": "1.0", "org.example.os": "particle-test" },
    created: "2026-01-02T03:04:05Z",
    layers: [
      { tar: tarDir(src), compression: "gzip" },
      { tar: tarBytes(layer2), compression: "zstd" },
      { tar: tarBytes(layer3), compression: "none" },
    ],
  });
}, 120_000);

afterAll(() => {
  for (const m of mounted.reverse()) particle(["unmount", m]);
  execFileSync("sh", ["-c", `grep -o ' ${base}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null; true`]);
  rmSync(base, { recursive: true, force: true });
});

// Directory mtimes in the expected tree moved with every rm/mkdir above; the image keeps the
// lower layer's (implied parents). Everything else is compared exactly, xattrs included.
const cmp = { ignoreMtime: (t: string) => t === "dir", xattrs: true };

describe("particle stage oci: (gzip + zstd + plain layers)", () => {
  let r: Record<string, any>;
  let stderr = "";

  it("stages the image, records reference, digests and config, shows progress", () => {
    const res = particle(["stage", `oci:${layout}:v1`, "--sysroot", sysroot, "--json"]);
    expect(res.code, res.stderr).toBe(0);
    stderr = res.stderr;
    r = JSON.parse(res.stdout);
    expect(r).toMatchObject({ id: "1", format: "composefs", source: `oci:${layout}:v1` });
    const m = JSON.parse(readFileSync(join(sysroot, "particle/deploy/1/deployment.json"), "utf8"));
    // skopeo gzips the uncompressed layer on its way into the cache: the unpacked manifest differs.
    expect(m.oci.manifestDigest).not.toBe(v1Digest);
    expect(existsSync(blobPathOf(join(sysroot, "particle/cache/oci"), m.oci.manifestDigest))).toBe(true);
    expect(m.oci).toEqual({
      reference: `oci:${layout}:v1`, sourceDigest: v1Digest, manifestDigest: m.oci.manifestDigest, created: "2026-01-02T03:04:05Z",
      labels: { "org.opencontainers.image.version": "1.0", "org.example.os": "particle-test" }, layers: 3,
    });
    // Not a terminal: plain progress lines, ending at 100%.
    expect(stderr).toMatch(/unpacking 3 layers \[#+\] .* 100%\n/);
    expect(stderr).toMatch(/fetching oci:/);
    expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
  });

  it("the mounted root equals the merged tree: whiteouts, opaque dirs, cross-layer hardlinks, long names, xattrs", () => {
    const m = join(mnt, "c1");
    mountDeployment("1", m);
    expect(compareTrees(expected, m, cmp)).toEqual([]);
    unmount(m);
  });

  it("particle status shows the image", () => {
    const j = JSON.parse(particleOk(["status", "--sysroot", sysroot, "--json", ...CMDLINE]));
    expect(j.status.booted.image).toMatchObject({ reference: `oci:${layout}:v1`, sourceDigest: v1Digest });
    const text = particleOk(["status", "--sysroot", sysroot, ...CMDLINE]);
    expect(text).toContain(`reference: oci:${layout}:v1`);
    expect(text).toContain(`digest: ${v1Digest}`);
    expect(text).toContain("label: org.example.os=particle-test");
  });

  it("a full erofs image from the same image mounts to the same tree", () => {
    const e = stageJson(`oci:${layout}:v1`, sysroot, ["--format", "erofs"]);
    const m = join(mnt, "e");
    mountDeployment(e.id, m);
    expect(compareTrees(expected, m, cmp)).toEqual([]);
    unmount(m);
  });
});

describe("other transports", () => {
  it.each(["oci-archive", "docker-archive"])("%s: the same image gives the same composefs image digest", (transport) => {
    const archive = join(base, `image-${transport}.tar`);
    // Docker images cannot carry zstd layers: that archive is made from a gzip-only copy of the image.
    if (transport === "docker-archive") {
      writeImage(layout, { tag: "gzip-only", layers: [tarDir(src), tarBytes(layer2), tarBytes(layer3)].map((tar) => ({ tar, compression: "gzip" as const })) });
    }
    sh("skopeo", ["--insecure-policy", "copy", "-q", `oci:${layout}:${transport === "docker-archive" ? "gzip-only" : "v1"}`, `${transport}:${archive}`]);
    const root = join(base, `sys-${transport}`);
    const a = stageJson(`${transport}:${archive}`, root);
    const first = JSON.parse(readFileSync(join(sysroot, "particle/deploy/1/deployment.json"), "utf8"));
    // The composefs image is reproducible: the same merged tree gives the same bytes.
    expect(a.imageDigest).toBe(first.imageDigest);
    expect(a.oci.reference).toBe(`${transport}:${archive}`);
  });
});

describe("refusals", () => {
  it("a corrupted layer blob in the cache is refused by name, removed, and leaves no deployment", () => {
    const before = deployments();
    const cache = join(sysroot, "particle/cache/oci");
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    const manifest = JSON.parse(readFileSync(blobPathOf(layout, index.manifests[0].digest), "utf8"));
    const layer2Digest: string = manifest.layers[1].digest;
    const blob = blobPathOf(cache, layer2Digest);
    // Without its unpacked-layer cache entry the blob is read again (with it, it would not be needed).
    rmSync(join(sysroot, "particle/cache/oci-layers", `${layer2Digest.slice(7)}.json`));
    const bytes = readFileSync(blob);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0x01;
    writeFileSync(blob, bytes);
    const res = particle(["stage", `oci:${layout}:v1`, "--sysroot", sysroot]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`layer 2/3: blob ${layer2Digest} is corrupted`));
    expect(res.stderr).toMatch(/removed it from the cache/);
    expect(existsSync(blob)).toBe(false);
    expect(deployments()).toEqual(before);
    expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
  });

  it("a corrupted blob in the source layout is refused", () => {
    const bad = join(base, "bad-layout");
    sh("cp", ["-a", layout, bad]);
    const index = JSON.parse(readFileSync(join(bad, "index.json"), "utf8"));
    const manifest = JSON.parse(readFileSync(blobPathOf(bad, index.manifests[0].digest), "utf8"));
    const p = blobPathOf(bad, manifest.layers[2].digest);
    const b = readFileSync(p);
    b[700] = b[700]! ^ 0xff;
    writeFileSync(p, b);
    const root = join(base, "sys-bad");
    const res = particle(["stage", `oci:${bad}:v1`, "--sysroot", root]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/particle: error: .*(corrupted|[Dd]igest did not match)/);
    expect(deployments(root)).toEqual([]);
  });

  it("a bad manifest is refused with the image named", () => {
    const bad = join(base, "bad-manifest");
    mkdirSync(bad);
    writeImage(bad, { tag: "v1", layers: [{ tar: tarBytes([{ path: "f", data: "x" }]), compression: "gzip" }] });
    const index = JSON.parse(readFileSync(join(bad, "index.json"), "utf8"));
    // Valid JSON, right digest, wrong shape: the layers are not a list.
    const text = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: "sha256:" + "0".repeat(64), size: 2 }, layers: "none" });
    const digest = `sha256:${createHash("sha256").update(text).digest("hex")}`;
    writeFileSync(blobPathOf(bad, digest), text);
    index.manifests[0] = { ...index.manifests[0], digest, size: text.length };
    writeFileSync(join(bad, "index.json"), JSON.stringify(index));
    const res = particle(["stage", `oci:${bad}:v1`, "--sysroot", join(base, "sys-badm")]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`particle: error: .*oci:${bad}:v1`));
    expect(deployments(join(base, "sys-badm"))).toEqual([]);
  });

  it("a policy that rejects everything refuses the image; the explicit override stages it and warns loudly", () => {
    const policy = join(base, "reject.json");
    writeFileSync(policy, JSON.stringify({ default: [{ type: "reject" }] }));
    const root = join(base, "sys-policy");
    const res = particle(["stage", `oci:${layout}:v1`, "--sysroot", root, "--signature-policy", policy]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`image oci:${layout}:v1 refused by the signature policy ${policy}`);
    expect(deployments(root)).toEqual([]);
    const ok = particle(["stage", `oci:${layout}:v1`, "--sysroot", root, "--insecure-no-verify-signatures"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/WARNING: --insecure-no-verify-signatures: image signatures are NOT verified/);
    expect(deployments(root)).toEqual(["1"]);
  });

  it("containers-storage: says whether it is present", () => {
    const res = particle(["stage", "containers-storage:localhost/none:1", "--sysroot", join(base, "sys-cs")]);
    expect(res.code).toBe(1);
    if (!existsSync("/var/lib/containers/storage")) expect(res.stderr).toMatch(/containers-storage is not present on this host/);
    else expect(res.stderr).toMatch(/containers-storage:localhost\/none:1/);
  });

  it("switch takes only images", () => {
    const res = particle(["switch", `dir:${src}`, "--sysroot", sysroot]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/not an image reference/);
  });
});

describe("particle upgrade", () => {
  it("--check says nothing changed while the tag points to the booted image", () => {
    const res = particle(["upgrade", "--check", "--sysroot", sysroot, ...FROM]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain(`no update: oci:${layout}:v1 is still ${v1Digest}`);
  });

  it("after the tag moves: --check reports it, upgrade stages only the new layer's objects, then says it is staged", () => {
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    const old = JSON.parse(readFileSync(blobPathOf(layout, index.manifests[0].digest), "utf8"));
    const v2 = writeImage(layout, {
      tag: "v1", labels: { "org.opencontainers.image.version": "2.0" },
      layers: [
        { tar: tarDir(src), compression: "gzip" },
        { tar: tarBytes(layer2), compression: "zstd" },
        { tar: tarBytes(layer3), compression: "none" },
        { tar: tarBytes([{ path: "etc/os-release", data: "ID=test\nVERSION_ID=2.0\n" }, { path: "new-in-v2", data: deterministicBytes(5000, 3) }]), compression: "gzip" },
      ],
    });
    expect(JSON.parse(readFileSync(blobPathOf(layout, v2), "utf8")).layers.slice(0, 3)).toEqual(old.layers);
    const check = particle(["upgrade", "--check", "--sysroot", sysroot, ...FROM]);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toContain(`booted:    ${v1Digest}`);
    expect(check.stdout).toContain(`available: ${v2}`);
    const before = deployments();
    const up = particle(["upgrade", "--sysroot", sysroot, "--json", ...FROM]);
    expect(up.code, up.stderr).toBe(0);
    const j = JSON.parse(up.stdout.trim().split("\n").at(-1)!);
    // The corrupted-blob test removed layer 2 from the cache; everything else was already there.
    expect(j.objectsAdded).toBe(2);
    expect(j.oci.sourceDigest).toBe(v2);
    expect(deployments()).toEqual([...before, j.id].sort());
    // Layers 1 and 3 are known from earlier stagings; layer 2 was removed from the cache by the
    // corrupted-blob test, so it is fetched and read again, and layer 4 is new.
    expect(up.stderr).toMatch(/unpacked 2 of 4 layers \(2 known from earlier stagings/);
    const m = JSON.parse(readFileSync(join(sysroot, "particle/deploy", j.id, "deployment.json"), "utf8"));
    expect(m.version).toBe("2.0");
    const again = particle(["upgrade", "--check", "--sysroot", sysroot, ...FROM]);
    expect(again.stderr).toContain(`already staged as deployment ${j.id}`);
  });
});
