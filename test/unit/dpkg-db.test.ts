import { posix } from "node:path";
import { describe, expect, it } from "vitest";
import { DPKG_DB, moveDpkgDatabase, VAR_DPKG, VAR_DPKG_LINK } from "../../runtime/src/tree/dpkg-db.ts";
import { walk, type Inode } from "../../runtime/src/tree/model.ts";
import { planDpkgDatabase } from "../../runtime/src/mounts/plan.ts";

const dir = (entries: Record<string, Inode>, mtimeSec = 100): Inode => ({
  kind: "dir", perm: 0o755, uid: 0, gid: 0, mtimeSec, mtimeNsec: 0, xattrs: [], size: 0,
  entries: Object.entries(entries).map(([n, inode]) => ({ name: Buffer.from(n), inode })),
});
const file = (text: string): Inode => ({ kind: "file", perm: 0o644, uid: 0, gid: 0, mtimeSec: 5, mtimeNsec: 0, xattrs: [], size: text.length, data: { kind: "bytes", bytes: Buffer.from(text) } });
const paths = (root: Inode) => [...walk(root)].map(([p, i]) => `${p.toString()}:${i.kind}`);
const at = (root: Inode, path: string): Inode | undefined => [...walk(root)].find(([p]) => p.toString() === `/${path}`)?.[1];

function debianTree(): Inode {
  return dir({
    usr: dir({ lib: dir({ "os-release": file("ID=debian\n") }, 7), bin: dir({}) }),
    var: dir({ lib: dir({ apt: dir({}), dpkg: dir({ status: file("Package: hello\n"), info: dir({ "hello.list": file("/usr/bin/hello\n") }) }, 42) }) }),
  });
}

describe("the dpkg database moves into /usr at stage time", () => {
  it("moves /var/lib/dpkg to /usr/lib/sysimage/dpkg, leaves a relative symlink, keeps every file", () => {
    const t = debianTree();
    const status = at(t, "var/lib/dpkg/status");
    expect(moveDpkgDatabase(t)).toBe("moved");
    const link = at(t, VAR_DPKG)!;
    expect(link.kind).toBe("symlink");
    expect(link.target!.toString()).toBe(VAR_DPKG_LINK);
    expect(link.mtimeSec).toBe(42);
    // The same inode object: contents, owners and hardlinks go along unchanged.
    expect(at(t, `${DPKG_DB}/status`)).toBe(status);
    expect(at(t, `${DPKG_DB}/info/hello.list`)?.kind).toBe("file");
    // A new sysimage/ takes its parent's mtime: the same tree always gives the same image.
    expect(at(t, "usr/lib/sysimage")).toMatchObject({ kind: "dir", perm: 0o755, uid: 0, mtimeSec: 7 });
    expect(at(t, "usr/lib")!.entries!.map((e) => e.name.toString())).toEqual(["os-release", "sysimage"]);
  });
  it("the symlink resolves to the new place from /var/lib", () => {
    expect(posix.join("/var/lib", VAR_DPKG_LINK)).toBe(`/${DPKG_DB}`);
  });
  it("is idempotent: a tree already moved (a layered deployment's) stays as it is", () => {
    const t = debianTree();
    moveDpkgDatabase(t);
    const before = paths(t);
    expect(moveDpkgDatabase(t)).toBe("already");
    expect(paths(t)).toEqual(before);
  });
  it.each([
    ["no /var at all", dir({ usr: dir({}) })],
    ["/var/lib without dpkg", dir({ var: dir({ lib: dir({ apt: dir({}) }) }) })],
    ["/var/lib/dpkg a symlink elsewhere", dir({ var: dir({ lib: dir({ dpkg: { ...file(""), kind: "symlink", target: Buffer.from("/opt/db") } }) }) })],
  ])("leaves a tree without a database directory alone: %s", (_, t) => {
    const before = paths(t);
    expect(moveDpkgDatabase(t)).toBe("none");
    expect(paths(t)).toEqual(before);
  });
  it("refuses a tree with a database in both places, naming them", () => {
    const t = debianTree();
    (at(t, "usr/lib")!.entries!).push({ name: Buffer.from("sysimage"), inode: dir({ dpkg: dir({}) }) });
    expect(() => moveDpkgDatabase(t)).toThrow(/both in \/var\/lib\/dpkg and in \/usr\/lib\/sysimage\/dpkg/);
  });
  it("refuses a /usr/lib that is not a directory", () => {
    const t = dir({ usr: dir({ lib: file("x") }), var: dir({ lib: dir({ dpkg: dir({}) }) }) });
    expect(() => moveDpkgDatabase(t)).toThrow(/usr\/lib\/sysimage: lib is a file/);
  });
});

describe("particle-boot: the deployment's database over the shared /var/lib/dpkg", () => {
  it("makes the mount point, then binds /usr/lib/sysimage/dpkg on it", () => {
    expect(planDpkgDatabase("/ws/lower")).toEqual([
      { op: "mkdir", path: "/ws/lower/var/lib/dpkg" },
      { op: "bind", source: "/ws/lower/usr/lib/sysimage/dpkg", target: "/ws/lower/var/lib/dpkg", recursive: false },
    ]);
  });
});
