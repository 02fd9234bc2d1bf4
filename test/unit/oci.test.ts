// Pure parts of OCI staging: layer merge rules, references, schemas and the layout reader, the
// upgrade plan, the signature policy options, progress rendering.
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TarReader } from "../../runtime/src/tar/reader.ts";
import { emptyDir, LayerBuilder, mergeLayer, toInodeTree, type Dir } from "../../runtime/src/oci/layers.ts";
import { walk } from "../../runtime/src/tree/model.ts";
import { decodeLayer, encodeLayer } from "../../runtime/src/oci/layer-cache.ts";
import { isDockerName, parseImageRef } from "../../runtime/src/oci/transport.ts";
import { trackedReference } from "../../runtime/src/oci/track-as.ts";
import { layerCompression } from "../../runtime/src/oci/schema.ts";
import { blobPath, pickPlatform, readImage } from "../../runtime/src/oci/layout.ts";
import { planUpgrade } from "../../runtime/src/oci/upgrade-plan.ts";
import { policyFromOptions } from "../../runtime/src/oci/policy.ts";
import { Progress, renderProgress } from "../../runtime/src/oci/progress.ts";
import type { Manifest } from "../../runtime/src/manifest.ts";
import { tarBytes, type TarItem } from "../host/lib/oci-tar.ts";
import { writeImage } from "../host/lib/oci-layout.ts";

/** Applies layers (as tar items) the way staging does, with file contents kept as text for checking. */
function apply(...layers: TarItem[][]): Map<string, string> {
  const merged: Dir = emptyDir();
  const content = new Map<object, string>();
  for (const [i, items] of layers.entries()) {
    const b = new LayerBuilder(merged, `layer ${i + 1}`);
    const r = new TarReader((e) => {
      const inode = b.add(e);
      if (!inode) return undefined;
      let s = "";
      return { write: (c) => { s += Buffer.from(c).toString(); }, end: () => { content.set(inode, s); } };
    });
    r.push(tarBytes(items));
    r.end();
    mergeLayer(merged, b.root);
  }
  const root = toInodeTree(merged);
  const ids = new Map<object, number>();
  const out = new Map<string, string>();
  for (const [p, inode] of walk(root)) {
    if (p.length === 0) continue;
    if (!ids.has(inode)) ids.set(inode, ids.size);
    const what = inode.kind === "file" ? `file#${ids.get(inode)}:${content.get(inode)}` : inode.kind === "dir" ? `dir:${inode.perm.toString(8)}` : inode.kind;
    out.set(p.toString().slice(1), what);
  }
  return out;
}

describe("layer merge", () => {
  const base: TarItem[] = [
    { path: "etc/", type: "dir" },
    { path: "etc/a", data: "a1" },
    { path: "etc/b", data: "b1" },
    { path: "opq/", type: "dir", mode: 0o700 },
    { path: "opq/old", data: "old" },
    { path: "opq/sub/deep", data: "deep" },
    { path: "gone/x", data: "x" },
    { path: "f", data: "file" },
    { path: "h1", data: "shared" },
    { path: "h2", type: "link", linkname: "h1" },
  ];

  it("a single layer: implied parents, hardlinks share one inode", () => {
    const t = apply(base);
    expect(t.get("h1")).toBe(t.get("h2"));
    expect(t.get("gone")).toBe("dir:755");
    expect(t.get("opq")).toBe("dir:700");
  });

  it("whiteouts remove files and whole directories; later layers replace", () => {
    const t = apply(base, [{ path: "etc/.wh.a", data: "" }, { path: ".wh.gone", data: "" }, { path: "etc/b", data: "b2" }]);
    expect(t.has("etc/a")).toBe(false);
    expect(t.has("gone")).toBe(false);
    expect(t.has("gone/x")).toBe(false);
    expect(t.get("etc/b")).toMatch(/:b2$/);
  });

  it("an opaque directory hides everything below it from lower layers, not its own new entries", () => {
    const t = apply(base, [{ path: "opq/.wh..wh..opq", data: "" }, { path: "opq/new", data: "n" }, { path: "opq/sub/", type: "dir" }]);
    expect([...t.keys()].filter((k) => k.startsWith("opq/"))).toEqual(["opq/new", "opq/sub"]);
    // The directory's own attributes stay those of the lower layer: only its contents were hidden.
    expect(t.get("opq")).toBe("dir:700");
  });

  it("a whiteout then a directory of the same name gives a new, empty directory; a file can replace a directory", () => {
    const t = apply(base, [{ path: ".wh.opq", data: "" }, { path: "opq/", type: "dir", mode: 0o750 }, { path: "opq/only", data: "o" }, { path: "etc", data: "now a file" }]);
    expect([...t.keys()].filter((k) => k.startsWith("opq"))).toEqual(["opq", "opq/only"]);
    expect(t.get("opq")).toBe("dir:750");
    expect(t.get("etc")).toMatch(/now a file/);
  });

  it("a hardlink may point into a lower layer; replacing one name of a linked pair breaks the link", () => {
    const t = apply(base, [{ path: "h3", type: "link", linkname: "h1" }, { path: "h2", data: "changed" }]);
    expect(t.get("h3")).toBe(t.get("h1"));
    expect(t.get("h2")).not.toBe(t.get("h1"));
    expect(t.get("h2")).toMatch(/changed$/);
  });

  it("aufs bookkeeping names are ignored, and a dangling hardlink is refused by name", () => {
    expect(apply([{ path: ".wh..wh.plnk/1", data: "" }, { path: "x", data: "" }]).has(".wh..wh.plnk")).toBe(true);
    expect(() => apply(base, [{ path: "dir/l", type: "link", linkname: "nope" }])).toThrow(/layer 2: "dir\/l": hardlink to "nope", which is not in this layer or below/);
  });
});

describe("layer merge: what umoci, buildah and containerd write and accept", () => {
  const base: TarItem[] = [
    { path: "d/", type: "dir" },
    { path: "d/a", data: "a" },
    { path: "d/sub/b", data: "b" },
    { path: "usr/lib/", type: "dir" },
    { path: "usr/lib/z", data: "z" },
    { path: "lib", type: "symlink", linkname: "usr/lib" },
    { path: "abs", type: "symlink", linkname: "/usr/lib" },
    { path: "up", type: "symlink", linkname: "../../../usr" },
    { path: "chain", type: "symlink", linkname: "abs" },
    { path: "usr/lib64", type: "symlink", linkname: "lib" },
    { path: "loop1", type: "symlink", linkname: "loop2" },
    { path: "loop2", type: "symlink", linkname: "loop1" },
    { path: "dangling", type: "symlink", linkname: "nowhere" },
    { path: "file", data: "f" },
  ];
  const keys = (t: Map<string, string>) => [...t.keys()].sort();

  it("a directory replaced by a file, with whiteouts under the same path in the same layer (umoci repack)", () => {
    const t = apply(base, [{ path: "d", data: "now a file" }, { path: "d/.wh.a", data: "" }, { path: "d/.wh.sub", data: "" }, { path: "d/.wh..wh..opq", data: "" }]);
    expect(t.get("d")).toMatch(/:now a file$/);
    expect(keys(t).filter((k) => k.startsWith("d/"))).toEqual([]);
  });

  it("a whiteout of a directory, then whiteouts under it in the same layer: the directory is gone", () => {
    const t = apply(base, [{ path: ".wh.d", data: "" }, { path: "d/.wh.a", data: "" }, { path: "d/sub/.wh..wh..opq", data: "" }]);
    expect(keys(t).filter((k) => k === "d" || k.startsWith("d/"))).toEqual([]);
  });

  it("entries other than whiteouts under a file of the same layer are still refused by name", () => {
    expect(() => apply(base, [{ path: "d", data: "file" }, { path: "d/x", data: "" }])).toThrow(/layer 2: "d\/x": parent "d" is not a directory in this layer/);
  });

  it("whiteouts that hide nothing change nothing and create no directories", () => {
    const before = apply(base);
    const t = apply(base, [
      { path: ".wh.nonexistent", data: "" },
      { path: "no/such/dir/.wh.thing", data: "" },
      { path: "usr/.wh.nothing-here", data: "" },
      { path: "file/.wh.below-a-file", data: "" },
      { path: "dangling/.wh.x", data: "" },
      { path: "ghost/.wh..wh..opq", data: "" },
    ]);
    expect(t).toEqual(before);
  });

  // [the path the layer writes under, where it lands, the symlink on the way]
  it.each([
    ["lib", "usr/lib", "lib"],
    ["abs", "usr/lib", "abs"],
    ["chain", "usr/lib", "chain"],
    ["usr/lib64", "usr/lib", "usr/lib64"],
    ["up/lib", "usr/lib", "up"],
  ])("an entry under %s (a symlinked directory below) lands in %s, inside the root", (link, real, symlink) => {
    const t = apply(base, [{ path: `${link}/added`, data: "new" }, { path: `${link}/deep/er`, data: "deeper" }, { path: `${link}/.wh.z`, data: "" }]);
    expect(t.get(symlink)).toBe("symlink");
    expect(t.get(`${real}/added`)).toMatch(/:new$/);
    expect(t.get(`${real}/deep/er`)).toMatch(/:deeper$/);
    expect(t.has(`${real}/z`)).toBe(false);
    expect(keys(t).filter((k) => k.startsWith(`${symlink}/`))).toEqual([]);
  });

  it("an explicit directory entry replaces the symlink, as containerd and umoci do", () => {
    const t = apply(base, [{ path: "lib/", type: "dir", mode: 0o750 }, { path: "lib/own", data: "own" }]);
    expect(t.get("lib")).toBe("dir:750");
    expect(keys(t).filter((k) => k.startsWith("lib/"))).toEqual(["lib/own"]);
    expect(t.has("usr/lib/own")).toBe(false);
  });

  it("entries under a symlink that loops or dangles are refused, naming the path and the target", () => {
    expect(() => apply(base, [{ path: "loop1/x", data: "" }])).toThrow(/"loop1" is a symlink to "loop2", which is not a directory in the layers below/);
    expect(() => apply(base, [{ path: "dangling/x", data: "" }])).toThrow(/"dangling" is a symlink to "nowhere"/);
  });
});

describe("layer cache entries", () => {
  /** A layer tree as staging builds it, each file given a digest made from its content. */
  function layer(lower: Dir, items: TarItem[]): Dir {
    const b = new LayerBuilder(lower, "layer");
    const r = new TarReader((e) => {
      const inode = b.add(e);
      if (!inode) return undefined;
      const h = createHash("sha256");
      return { write: (c) => { h.update(c); }, end: () => { inode.data = { kind: "object", digest: h.digest("hex") }; } };
    });
    r.push(tarBytes(items));
    r.end();
    return b.root;
  }
  const lower = emptyDir();
  mergeLayer(lower, layer(emptyDir(), [{ path: "bin/tool", data: "tool", mode: 0o755 }]));
  const items: TarItem[] = [
    { path: "./", type: "dir", mode: 0o755, mtime: 5 },
    { path: "etc/.wh..wh..opq", data: "" },
    { path: ".wh.gone", data: "" },
    { path: "etc/conf", data: "c", xattrs: { "user.x": Buffer.from([0, 255]) } },
    { path: "etc/conf2", type: "link", linkname: "etc/conf" },
    { path: "bin/tool-again", type: "link", linkname: "bin/tool" },
    { path: "dev/console", type: "chr", devmajor: 5, devminor: 1 },
    { path: "s", type: "symlink", linkname: "etc/conf" },
    { path: Buffer.from([0x6e, 0xe9, 0xff]), data: "latin1 name" },
  ];

  it("round-trips a layer tree: whiteouts, opaque dirs, in-layer and lower hardlinks, devices, raw names", () => {
    const up = layer(lower, items);
    const text = encodeLayer(up);
    const back = decodeLayer(text, lower, () => true)!;
    expect(encodeLayer(back)).toBe(text);
    expect((back.children.get("bin") as any).dir.children.get("tool-again").inode).toBe((lower.children.get("bin") as any).dir.children.get("tool").inode);
    const etc = (back.children.get("etc") as any).dir;
    expect(etc.opaque).toBe(true);
    expect(etc.children.get("conf").inode).toBe(etc.children.get("conf2").inode);
    expect(back.children.has(Buffer.from([0x6e, 0xe9, 0xff]).toString("latin1"))).toBe(true);
  });

  it("is a miss when an object is gone from the store or a lower link target is missing", () => {
    const text = encodeLayer(layer(lower, items));
    expect(decodeLayer(text, lower, (d) => d !== createHash("sha256").update("c").digest("hex"))).toBeUndefined();
    expect(decodeLayer(text, emptyDir(), () => true)).toBeUndefined();
  });
});

describe("image references", () => {
  it.each([
    ["docker://quay.io/x/os:stable", { transport: "docker", ref: "docker://quay.io/x/os:stable" }],
    ["oci:/srv/layout:v2", { transport: "oci", ref: "oci:/srv/layout:v2" }],
    ["oci:rel/layout", { transport: "oci", ref: "oci:/work/rel/layout" }],
    ["oci-archive:/x.tar", { transport: "oci-archive", ref: "oci-archive:/x.tar" }],
    ["docker-archive:img.tar", { transport: "docker-archive", ref: "docker-archive:/work/img.tar" }],
    ["containers-storage:localhost/os:1", { transport: "containers-storage", ref: "containers-storage:localhost/os:1" }],
  ])("%s", (spec, want) => expect(parseImageRef(spec, "/work")).toEqual(want));

  it.each([["dir:/x"], ["tar:/x.tar"], ["/srv/tree"]])("%s is not an image", (spec) => expect(parseImageRef(spec)).toBeUndefined());

  it.each([["docker://", /missing the image name/], ["docker:x", /docker:\/\/NAME/], ["oci:", /missing the path/]])("refuses %s", (spec, msg) =>
    expect(() => parseImageRef(spec)).toThrow(msg));

  it.each(["quay.io/x/os:stable", "10.0.2.100/os/x:stable", "127.0.0.1:5000/os/x", "localhost:5000/a/b-c__d.e:v1.2-3",
    "fedora", "[fd00::1]:5000/os/x:v1", `quay.io/x/os@sha256:${"ab".repeat(32)}`, `os:stable@sha256:${"0".repeat(64)}`,
  ])("docker name %s", (name) => expect(isDockerName(name)).toBe(true));

  it.each(["", "quay.io/X/os", "quay.io/x/os:", "quay.io/x/os:-bad", "quay.io//os", "quay.io/x/os tag", "-host/os", "host:port/os",
    "quay.io/x/os@sha256:short", "os/", `quay.io/x/os:${"t".repeat(129)}`,
  ])("not a docker name: %j", (name) => expect(isDockerName(name)).toBe(false));

  it("layer media types", () => {
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar")).toBe("none");
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip")).toBe("gzip");
    expect(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd")).toBe("zstd");
    expect(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe("gzip");
    expect(layerCompression("application/vnd.oci.image.config.v1+json")).toBeUndefined();
  });
});

describe("install --target-imgref", () => {
  const registry = "docker://127.0.0.1:5000/os/x:stable";

  it.each([
    [registry, "docker://10.0.2.100/os/x:stable", "docker://10.0.2.100/os/x:stable"],
    ["oci:/srv/layout:v1", "oci:layout:v1", "oci:/work/layout:v1"],
    ["oci-archive:x.tar", "containers-storage:localhost/os:1", "containers-storage:localhost/os:1"],
    [registry, "oci-archive:/srv/os.tar", "oci-archive:/srv/os.tar"],
  ])("from %s, tracks %s as %s", (source, target, want) => expect(trackedReference(source, target, "/work")).toBe(want));

  it("records what it returns unchanged when given it again (install passes it on to stage)", () => {
    const once = trackedReference("oci:/srv/layout:v1", "oci:rel:v1", "/work");
    expect(trackedReference("oci:/srv/layout:v1", once, "/elsewhere")).toBe(once);
  });

  it.each(["dir:/srv/tree", "tar:/srv/tree.tar.zst", "/srv/tree", "tree.tar"])("refuses a tree source %s, naming both", (source) =>
    expect(() => trackedReference(source, "docker://10.0.2.100/os/x:stable")).toThrow(
      `--target-imgref docker://10.0.2.100/os/x:stable: the source ${source} is not an image, so the installed system has no image to track`));

  it.each([
    ["10.0.2.100/os/x:stable", /^--target-imgref 10\.0\.2\.100\/os\/x:stable: not an image reference \(expected docker:\/\/NAME/],
    ["dir:/srv/tree", /^--target-imgref dir:\/srv\/tree: not an image reference/],
    ["http://10.0.2.100/os/x", /^--target-imgref http:\/\/10\.0\.2\.100\/os\/x: not an image reference/],
    ["docker://", /^--target-imgref: image docker:\/\/: missing the image name/],
    ["docker:10.0.2.100/os/x", /^--target-imgref: image docker:10\.0\.2\.100\/os\/x: the docker transport is written docker:\/\/NAME/],
    ["oci:", /^--target-imgref: image oci:: missing the path/],
    ["docker://10.0.2.100/OS/x:stable", /^--target-imgref docker:\/\/10\.0\.2\.100\/OS\/x:stable: not a valid image name/],
    ["docker://10.0.2.100/os/x stable", /^--target-imgref docker:\/\/10\.0\.2\.100\/os\/x stable: not a valid image name/],
  ])("refuses the target %j, naming it", (target, msg) => expect(() => trackedReference(registry, target)).toThrow(msg));
});

describe("OCI layout reader", () => {
  const mk = () => {
    const d = mkdtempSync(join(tmpdir(), "oci-unit-"));
    const digest = writeImage(d, { tag: "v1", layers: [{ tar: tarBytes([{ path: "f", data: "x" }]), compression: "gzip" }], labels: { "org.example": "yes" } });
    return { d, digest };
  };

  it("reads index → manifest → config", () => {
    const { d, digest } = mk();
    try {
      const img = readImage(d, "v1");
      expect(img.manifestDigest).toBe(digest);
      expect(img.layers).toHaveLength(1);
      expect(img.layers[0]!.compression).toBe("gzip");
      expect(img.config.config?.Labels).toEqual({ "org.example": "yes" });
      expect(() => readImage(d, "v2")).toThrow(/no image tagged "v2"/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("refuses a corrupted manifest blob and a manifest that breaks the schema, naming them", () => {
    const { d, digest } = mk();
    try {
      const p = blobPath(d, digest);
      const m = JSON.parse(readFileSync(p, "utf8"));
      writeFileSync(p, JSON.stringify({ ...m, layers: "nope" }));
      expect(() => readImage(d, "v1")).toThrow(new RegExp(`manifest ${digest}: blob is corrupted`));
      // A bad manifest that does match its digest: the schema names the field.
      const bad = writeImage(d, { tag: "v2", layers: [] });
      writeFileSync(blobPath(d, bad), "{}");
      const index = JSON.parse(readFileSync(join(d, "index.json"), "utf8"));
      const text = JSON.stringify({ schemaVersion: 2, config: { mediaType: "x", digest: "sha256:1", size: 1 }, layers: [] });
      const dg = `sha256:${createHash("sha256").update(text).digest("hex")}`;
      writeFileSync(blobPath(d, dg), text);
      index.manifests.push({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: dg, size: text.length, annotations: { "org.opencontainers.image.ref.name": "v3" } });
      writeFileSync(join(d, "index.json"), JSON.stringify(index));
      expect(() => readImage(d, "v3")).toThrow(/manifest sha256:[0-9a-f]+: .*config\.digest/);
      writeFileSync(join(d, "index.json"), "{\"schemaVersion\": 2}");
      expect(() => readImage(d, "v1")).toThrow(/index\.json: .*manifests/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("picks the platform's image out of a multi-platform index", () => {
    const desc = (arch: string) => ({ mediaType: "m", digest: `sha256:${arch.padEnd(64, "0").replace(/[^0-9a-f]/g, "0")}`, size: 1, platform: { os: "linux", architecture: arch } });
    expect(pickPlatform({ schemaVersion: 2, manifests: [desc("arm64"), desc("amd64")] }, "amd64", "x").platform?.architecture).toBe("amd64");
    expect(() => pickPlatform({ schemaVersion: 2, manifests: [desc("arm64")] }, "amd64", "x")).toThrow(/no image for linux\/amd64/);
  });
});

describe("upgrade plan", () => {
  const D = (n: string) => `sha256:${n.repeat(64)}`;
  const m = (id: string, digest?: string, ref = "oci:/l:v1"): Manifest => ({
    schema: 1, id, format: "composefs", imageDigest: "0".repeat(64), source: ref, created: `2026-01-0${id}T00:00:00Z`, files: 1, bytes: 1,
    ...(digest ? { oci: { reference: ref, sourceDigest: digest, manifestDigest: digest, labels: {}, layers: 1 } } : {}),
  });

  it.each([
    ["unchanged", [m("1", D("a"))], D("a"), { action: "none", reason: "current" }],
    ["changed", [m("1", D("a"))], D("b"), { action: "stage", from: D("a"), to: D("b") }],
    ["already staged", [m("1", D("a")), m("2", D("b"))], D("b"), { action: "none", reason: "staged", stagedId: "2" }],
  ] as const)("%s", (_n, ms, cur, want) => expect(planUpgrade(ms, "1", cur)).toMatchObject(want));

  it("an update staged by a killed upgrade, with no boot entry yet, is made bootable, not staged again", () => {
    const ms = [m("1", D("a")), m("2", D("b"))];
    expect(planUpgrade(ms, "1", D("b"), new Set(["1"]))).toEqual({ action: "boot", reference: "oci:/l:v1", digest: D("b"), stagedId: "2" });
    expect(planUpgrade(ms, "1", D("b"), new Set(["1", "2"]))).toMatchObject({ action: "none", reason: "staged", stagedId: "2" });
    // The bare base of a layered deployment is no upgrade of it: the packages are re-applied.
    const layered = [{ ...m("1", D("a")), layered: ["hello"] }, m("2", D("b"))];
    expect(planUpgrade(layered, "1", D("b"), new Set(["1"]))).toMatchObject({ action: "stage" });
  });

  it("needs a booted deployment that came from an image", () => {
    expect(() => planUpgrade([m("1", D("a"))], undefined, D("a"))).toThrow(/not booted from a particle deployment/);
    expect(() => planUpgrade([m("1")], "1", D("a"))).toThrow(/staged from oci:\/l:v1, not from an image/);
  });
});

describe("signature policy options", () => {
  it.each([
    [{}, { kind: "system" }],
    [{ signaturePolicy: "/etc/p.json" }, { kind: "file", path: "/etc/p.json" }],
    [{ insecureNoVerifySignatures: true }, { kind: "insecure" }],
  ])("%j", (o, want) => expect(policyFromOptions(o)).toEqual(want));
  it("refuses both at once", () => expect(() => policyFromOptions({ signaturePolicy: "/p", insecureNoVerifySignatures: true })).toThrow(/contradict/));
});

describe("progress", () => {
  it("renders a bar with bytes and percent", () => {
    expect(renderProgress("unpacking", 500_000, 1_000_000, 10)).toBe("unpacking [#####     ] 500.0 KB / 1.0 MB  50%");
    expect(renderProgress("fetching", 1234, undefined)).toBe("fetching 1.2 KB");
  });

  it("writes plain lines at each quarter when not on a terminal, and redraws in place on one", () => {
    const lines: string[] = [];
    const p = new Progress({ write: (s: string) => lines.push(s), isTTY: false });
    p.start("unpacking", 100);
    for (let i = 0; i < 100; i++) p.add(1);
    p.end();
    expect(lines.map((l) => l.trim().split(" ").at(-1))).toEqual(["0%", "25%", "50%", "75%", "100%"]);
    expect(lines.every((l) => l.endsWith("\n"))).toBe(true);
    const tty: string[] = [];
    const q = new Progress({ write: (s: string) => tty.push(s), isTTY: true });
    q.start("fetching");
    q.end();
    expect(tty[0]!.startsWith("\r\x1b[K")).toBe(true);
    expect(tty.at(-1)).toBe("\n");
  });
});
