// The base image's writer (runtime/src/image): tar entries read back by particle's own tar reader,
// the same tree giving the same bytes, mtimes clamped, and the image JSON documents.
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { TarReader, type TarEntry } from "../../runtime/src/tar/reader.ts";
import type { Entry, Inode } from "../../runtime/src/tree/model.ts";
import { layerTar } from "../../runtime/src/image/layer-stream.ts";
import { configJson, indexJson, isoTime, manifestJson, parseEpoch, parseLabels } from "../../runtime/src/image/oci-json.ts";
import { bootcKernels } from "../../runtime/src/image/pack.ts";
import { storageRoot } from "../../runtime/src/oci/skopeo.ts";

const EPOCH = 1_700_000_000;
const ino = (p: Partial<Inode> & Pick<Inode, "kind">): Inode => ({ perm: 0o644, uid: 0, gid: 0, mtimeSec: EPOCH - 10, mtimeNsec: 5, xattrs: [], size: 0, ...p });
const file = (text: string, p: Partial<Inode> = {}): Inode => ino({ kind: "file", size: Buffer.byteLength(text), data: { kind: "bytes", bytes: Buffer.from(text) }, ...p });
const dir = (entries: Record<string, Inode>, p: Partial<Inode> = {}): Inode => ino({
  kind: "dir", perm: 0o755, ...p,
  entries: Object.entries(entries).map(([name, inode]): Entry => ({ name: Buffer.from(name), inode })).sort((a, b) => Buffer.compare(a.name, b.name)),
});

function read(bytes: Buffer): { e: TarEntry; data: string }[] {
  const out: { e: TarEntry; data: string }[] = [];
  const r = new TarReader((e) => {
    const got = { e, data: "" };
    out.push(got);
    return { write: (c) => { got.data += Buffer.from(c).toString(); }, end: () => {} };
  });
  r.push(bytes);
  r.end();
  return out;
}

function tree(): Inode {
  const shared = file("same inode\n");
  const longName = "d".repeat(120);
  return dir({
    usr: dir({ lib: dir({ modules: dir({ "6.12.0": dir({ vmlinuz: file("kernel"), "modules.dep": file("") }) }) }) }),
    etc: dir({
      a: shared, b: shared,
      new: file("written by make install\n", { mtimeSec: EPOCH + 5000 }),
      cap: file("x", { xattrs: [{ name: Buffer.from("security.capability"), value: Buffer.from([1, 0, 0, 2, 0xff]) }], uid: 7, gid: 8, perm: 0o4755 }),
      link: ino({ kind: "symlink", perm: 0o777, target: Buffer.from("a") }),
      [longName]: dir({ f: file("deep\n") }),
    }),
    dev: dir({ null: ino({ kind: "chr", rdevMajor: 1, rdevMinor: 3 }) }),
    run: dir({ sock: ino({ kind: "sock" }) }),
  });
}

const bytesOf = (root: Inode, keep?: (p: string) => boolean) => Buffer.concat([...layerTar(root, EPOCH, keep ? { keep } : {})]);

describe("layerTar", () => {
  it("writes every node in path order, read back by particle's tar reader with owners, modes, xattrs, links and devices", () => {
    const got = read(bytesOf(tree()));
    const byPath = new Map(got.map((g) => [g.e.path.toString(), g]));
    expect(got.map((g) => g.e.path.toString())).toEqual([
      "dev", "dev/null", "etc", "etc/a", "etc/b", "etc/cap", `etc/${"d".repeat(120)}`, `etc/${"d".repeat(120)}/f`, "etc/link", "etc/new",
      "run", "usr", "usr/lib", "usr/lib/modules", "usr/lib/modules/6.12.0", "usr/lib/modules/6.12.0/modules.dep", "usr/lib/modules/6.12.0/vmlinuz",
    ]);
    expect(byPath.get("etc/a")).toMatchObject({ e: { type: "file", size: 11 }, data: "same inode\n" });
    expect(byPath.get("etc/b")!.e).toMatchObject({ type: "link" });
    expect(byPath.get("etc/b")!.e.linkname.toString()).toBe("etc/a");
    const cap = byPath.get("etc/cap")!.e;
    expect(cap).toMatchObject({ perm: 0o4755, uid: 7, gid: 8 });
    expect(cap.xattrs.map((x) => [x.name.toString(), x.value.toString("hex")])).toEqual([["security.capability", "01000002ff"]]);
    expect(byPath.get("etc/link")!.e.linkname.toString()).toBe("a");
    expect(byPath.get("dev/null")!.e).toMatchObject({ type: "chr", devmajor: 1, devminor: 3 });
    expect(byPath.get(`etc/${"d".repeat(120)}/f`)!.data).toBe("deep\n");
  });

  it("clamps mtimes to the epoch and drops sub-second parts; older times stay", () => {
    const got = new Map(read(bytesOf(tree())).map((g) => [g.e.path.toString(), g.e]));
    expect(got.get("etc/new")).toMatchObject({ mtimeSec: EPOCH, mtimeNsec: 0 });
    expect(got.get("etc/a")).toMatchObject({ mtimeSec: EPOCH - 10, mtimeNsec: 0 });
  });

  it("gives the same bytes for the same tree, and other bytes when one file changes", () => {
    const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    expect(digest(bytesOf(tree()))).toBe(digest(bytesOf(tree())));
    const t = tree();
    const etc = t.entries!.find((e) => e.name.toString() === "etc")!.inode;
    etc.entries!.find((e) => e.name.toString() === "new")!.inode.data = { kind: "bytes", bytes: Buffer.from("written by make instalL\n") };
    expect(digest(bytesOf(t))).not.toBe(digest(bytesOf(tree())));
  });

  it("with a filter, keeps the chosen entries and the directories above them", () => {
    const got = read(bytesOf(tree(), (p) => p.startsWith("usr/lib/modules/6.12.0/vm")));
    expect(got.map((g) => g.e.path.toString())).toEqual(["usr", "usr/lib", "usr/lib/modules", "usr/lib/modules/6.12.0", "usr/lib/modules/6.12.0/vmlinuz"]);
  });
});

describe("image documents", () => {
  const layer = { digest: `sha256:${"a".repeat(64)}`, size: 10, diffId: `sha256:${"b".repeat(64)}` };

  it("config: created from the epoch, labels sorted, one history entry per layer", () => {
    const c = JSON.parse(configJson({ epoch: EPOCH, labels: { z: "1", "containers.bootc": "1" }, createdBy: ["pack"] }, [layer]));
    expect(c.created).toBe("2023-11-14T22:13:20Z");
    expect(Object.keys(c.config.Labels)).toEqual(["containers.bootc", "z"]);
    expect(c.rootfs).toEqual({ type: "layers", diff_ids: [layer.diffId] });
    expect(c.history).toEqual([{ created: "2023-11-14T22:13:20Z", created_by: "pack" }]);
    expect(() => configJson({ epoch: EPOCH, labels: {}, createdBy: [] }, [layer])).toThrow(/1 layers but 0 history entries/);
  });

  it("manifest and index name their blobs; the same input gives the same text", () => {
    const cfg = { digest: `sha256:${"c".repeat(64)}`, size: 3 };
    const m = manifestJson(cfg, [layer]);
    expect(m).toBe(manifestJson(cfg, [layer]));
    expect(JSON.parse(m).layers[0]).toEqual({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layer.digest, size: 10 });
    expect(JSON.parse(indexJson(cfg, "latest")).manifests[0].annotations).toEqual({ "org.opencontainers.image.ref.name": "latest" });
    expect(isoTime(0)).toBe("1970-01-01T00:00:00Z");
  });

  it.each([
    [undefined, /SOURCE_DATE_EPOCH is not set/],
    ["", /SOURCE_DATE_EPOCH is not set/],
    ["12.5", /SOURCE_DATE_EPOCH="12.5": expected whole seconds/],
    ["-1", /expected whole seconds/],
  ])("parseEpoch(%j) is refused", (text, err) => {
    expect(() => parseEpoch(text)).toThrow(err);
  });

  it("parseEpoch and parseLabels take good input; a label without = is named", () => {
    expect(parseEpoch("1700000000")).toBe(EPOCH);
    expect(parseLabels(["a=b", "c=d=e", "e="])).toEqual({ a: "b", c: "d=e", e: "" });
    expect(() => parseLabels(["novalue"])).toThrow(/--label "novalue": expected KEY=VALUE/);
    expect(() => parseLabels(["=x"])).toThrow(/expected KEY=VALUE/);
  });
});

describe("bootcKernels", () => {
  it("lists versions with a vmlinuz file beside their modules only", () => {
    expect(bootcKernels(tree())).toEqual(["6.12.0"]);
    expect(bootcKernels(dir({ usr: dir({ lib: dir({ modules: dir({ "6.1": dir({}), "6.2": dir({ vmlinuz: ino({ kind: "symlink", target: Buffer.from("x") }) }) }) }) }) }))).toEqual([]);
    expect(bootcKernels(dir({}))).toEqual([]);
  });
});

describe("storageRoot", () => {
  it.each([
    ["containers-storage:localhost/x:1", "/var/lib/containers/storage"],
    ["containers-storage:[overlay@/srv/s+/run/s]localhost/x:1", "/srv/s"],
    ["containers-storage:[/srv/s]x", "/srv/s"],
    ["containers-storage:[vfs@/srv/s+/run/s:opt=1]x", "/srv/s"],
  ])("%s → %s", (ref, root) => {
    expect(storageRoot(ref)).toBe(root);
  });
});
