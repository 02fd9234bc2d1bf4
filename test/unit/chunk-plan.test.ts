// The split of a tree into layers along dpkg packages: big packages alone, small ones in stable
// bins, unowned files apart, and a change to one package moving no other file.
import { describe, expect, it } from "vitest";
import { BIN_LAYERS, parseDpkgList, planChunks, UNOWNED, UNOWNED_GROUPS, type PackageFiles } from "../../runtime/src/image/chunk-plan.ts";

function world(n: number, bump?: string) {
  const files = new Map<string, number>();
  const packages: PackageFiles[] = [];
  for (let i = 0; i < n; i++) {
    const name = `pkg${String(i).padStart(3, "0")}`;
    const paths = ["/usr", `/usr/share/${name}`];
    for (let j = 0; j < 3; j++) {
      files.set(`usr/share/${name}/f${j}`, (i + 1) * 1000 + (name === bump ? 77 : 0));
      paths.push(`/usr/share/${name}/f${j}`);
    }
    packages.push({ name, paths });
  }
  files.set("etc/hostname", 10);
  files.set("var/lib/dpkg/status", 300);
  files.set("usr/bin/particle", 5_000_000);
  return { files, packages };
}

describe("planChunks", () => {
  it("puts every file in exactly one layer and stays under the cap; unowned files get their own layer", () => {
    const { files, packages } = world(200);
    const plan = planChunks(files, packages, 64);
    expect(plan.layers.length).toBeLessThanOrEqual(64);
    expect([...plan.layerOf.keys()].sort()).toEqual([...files.keys()].sort());
    expect(plan.layers[plan.layerOf.get("etc/hostname")!]).toBe("unowned:etc");
    expect(plan.layers[plan.layerOf.get("var/lib/dpkg/status")!]).toBe("unowned:dpkg");
    expect(plan.layers[plan.layerOf.get("usr/bin/particle")!]).toBe(UNOWNED);
    // The biggest packages have a layer each; the bins and unowned groups take the rest.
    expect(plan.layers.filter((l) => l.startsWith("pkg:"))).toHaveLength(64 - BIN_LAYERS - UNOWNED_GROUPS.length - 1);
    expect(plan.layers).toContain("pkg:pkg199");
    expect(plan.layers).not.toContain("pkg:pkg000");
    // A package's files are together.
    expect(new Set([0, 1, 2].map((j) => plan.layerOf.get(`usr/share/pkg005/f${j}`))).size).toBe(1);
  });

  it("is deterministic, whatever the order of the package list", () => {
    const { files, packages } = world(100);
    const a = planChunks(files, packages, 40);
    const b = planChunks(files, [...packages].reverse(), 40);
    expect(b.layers).toEqual(a.layers);
    expect([...b.layerOf]).toEqual([...a.layerOf]);
  });

  it("a package whose size changes a little (a new version) moves no file of another package", () => {
    const a = world(200);
    const b = world(200, "pkg150");
    const pa = planChunks(a.files, a.packages, 64);
    const pb = planChunks(b.files, b.packages, 64);
    for (const f of a.files.keys()) expect(pb.layers[pb.layerOf.get(f)!], f).toBe(pa.layers[pa.layerOf.get(f)!]);
  });

  it("a file listed by two packages goes to the first by name; empty bins are dropped", () => {
    const files = new Map([["usr/bin/x", 1]]);
    const plan = planChunks(files, [{ name: "zz", paths: ["/usr/bin/x"] }, { name: "aa", paths: ["/usr/bin/x"] }], 64);
    expect(plan.layers).toEqual(["pkg:aa"]);
    expect(plan.layerOf.get("usr/bin/x")).toBe(0);
  });

  it("refuses a cap too small for the bins", () => {
    expect(() => planChunks(new Map(), [], 10)).toThrow(/at least 21 layers are needed, got 10/);
  });
});

describe("parseDpkgList", () => {
  it("keeps absolute paths, drops the root entry and blank lines", () => {
    expect(parseDpkgList("/.\n/usr\n/usr/bin/x\n\n")).toEqual(["/usr", "/usr/bin/x"]);
  });
});
