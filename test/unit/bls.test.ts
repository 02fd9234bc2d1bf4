import { describe, expect, it } from "vitest";
import { getAll, getKey, getOptions, newEntry, parseEntry, renderEntry, setKey, setOptions } from "../../runtime/src/bls/entry.ts";
import { entryFileName, fileSafe, isBad, parseEntryFileName } from "../../runtime/src/bls/filename.ts";
import { compareEntries, compareVersions, globMatch, nextGeneration, sortEntries, SORT_KEY } from "../../runtime/src/bls/order.ts";
import { deploymentArgs, entryTitle, renderDeploymentEntry } from "../../runtime/src/bls/particle-entry.ts";

const FOREIGN = `# Boot Loader Specification type#1 entry
title      Debian GNU/Linux 13
version    6.12.48
machine-id 4f2d1c
sort-key   debian
options    root=UUID=abc ro quiet
linux      /4f2d1c/6.12.48/linux
initrd     /4f2d1c/6.12.48/initrd.img-6.12.48
x-vendor   something we do not know
\tdevicetree-overlay /a.dtbo /b.dtbo
`;

describe("BLS entry parse/render", () => {
  it.each([
    ["a foreign entry", FOREIGN],
    ["no final newline gets one", "title x\nlinux /v"],
    ["empty", ""],
    ["tabs and odd spacing", "title\t\tA  B \nlinux   /vmlinuz\n"],
    ["blank lines and comments", "\n# c\ntitle t\n\n"],
  ])("round-trips %s", (_n, text) => {
    const want = text === "" ? "\n" : text.endsWith("\n") ? text : `${text}\n`;
    expect(renderEntry(parseEntry(text))).toBe(want === "\n" && text === "" ? "\n" : want);
  });

  it("reads keys, repeated keys and joined options", () => {
    const e = parseEntry(FOREIGN + "options console=ttyS0\ninitrd /extra.img\n");
    expect(getKey(e, "title")).toBe("Debian GNU/Linux 13");
    expect(getKey(e, "x-vendor")).toBe("something we do not know");
    expect(getAll(e, "initrd")).toEqual(["/4f2d1c/6.12.48/initrd.img-6.12.48", "/extra.img"]);
    expect(getOptions(e)).toBe("root=UUID=abc ro quiet console=ttyS0");
    expect(getKey(e, "nope")).toBeUndefined();
  });

  it("a comment line is never a key", () => {
    expect(getKey(parseEntry("#title x\n  # version 3\n"), "title")).toBeUndefined();
  });

  it("setKey replaces in place and keeps every other line byte for byte", () => {
    const out = renderEntry(setKey(parseEntry(FOREIGN), "version", "7"));
    const a = FOREIGN.split("\n");
    const b = out.split("\n");
    expect(b.length).toBe(a.length);
    expect(a.filter((l, i) => l !== b[i])).toEqual(["version    6.12.48"]);
    expect(getKey(parseEntry(out), "version")).toBe("7");
  });

  it.each([
    ["inserts a known key in key order", "title t\nlinux /v\noptions o\n", "version", "3", ["title", "version", "linux", "options"]],
    ["appends an unknown key", "title t\nlinux /v\n", "x-foo", "1", ["title", "linux", "x-foo"]],
    ["drops later duplicates (which would win)", "version 1\ntitle t\nversion 2\n", "version", "9", ["version", "title"]],
  ])("setKey %s", (_n, text, key, value, keys) => {
    const e = setKey(parseEntry(text), key, value);
    expect(e.lines.map((l) => (l.kind === "kv" ? l.key : "#"))).toEqual(keys);
    expect(getKey(e, key)).toBe(value);
  });

  it("setOptions folds several options lines into one at the first one's place", () => {
    const e = setOptions(parseEntry("title t\noptions a\nlinux /v\noptions b\n"), "a b c");
    expect(renderEntry(e)).toBe("title t\noptions    a b c\nlinux /v\n");
  });

  it("newEntry aligns keys like kernel-install", () => {
    const text = renderEntry(newEntry({ title: "T", version: "1", sortKey: "s", linux: "/k", initrd: ["/i"], options: "o=1", comments: ["hi"] }));
    expect(text).toBe("# hi\ntitle      T\nversion    1\nsort-key   s\nlinux      /k\ninitrd     /i\noptions    o=1\n");
  });

  it("newEntry refuses relative paths", () => {
    expect(() => newEntry({ title: "T", version: "1", sortKey: "s", linux: "k", initrd: ["/i"], options: "" })).toThrow();
  });
});

describe("entry file names and boot counting", () => {
  it.each([
    ["particle-13-2+3.conf", { id: "particle-13-2.conf", triesLeft: 3, triesDone: 0 }],
    ["particle-13-2+2-1.conf", { id: "particle-13-2.conf", triesLeft: 2, triesDone: 1 }],
    ["particle-13-2+0-3.conf", { id: "particle-13-2.conf", triesLeft: 0, triesDone: 3 }],
    ["particle-13-2.conf", { id: "particle-13-2.conf" }],
    ["Debian-6.12+1.conf", { id: "debian-6.12.conf", triesLeft: 1, triesDone: 0 }],
    ["a+b+2.conf", { id: "a+b.conf", triesLeft: 2, triesDone: 0 }],
    ["x+1-2-3.conf", { id: "x+1-2-3.conf" }],
    ["with+plus.conf", { id: "with+plus.conf" }],
  ])("%s", (file, want) => expect(parseEntryFileName(file)).toEqual({ file, ...want }));

  it.each([".particle-1-1.conf.tmp-3", "particle-1-1.conf.tmp", "loader.conf.bak", ".hidden.conf"])("ignores %s", (f) =>
    expect(parseEntryFileName(f)).toBeUndefined());

  it.each([
    ["13", "2", 3, "particle-13-2+3.conf"],
    [undefined, "1", 3, "particle-0-1+3.conf"],
    ["1.2+b3/x", "4", 3, "particle-1.2_b3_x-4+3.conf"],
    ["13", "5", 0, "particle-13-5.conf"],
    ["..", "1", undefined, "particle-0-1+3.conf"],
  ])("entryFileName(%j, %j, %j)", (v, id, tries, want) => expect(entryFileName(v, id, tries)).toBe(want));

  it("fileSafe never yields a counter or a hidden name", () => {
    for (const s of ["+3", ".x", "a b", ""]) expect(fileSafe(s)).toMatch(/^[A-Za-z0-9~][A-Za-z0-9._~]*$/);
  });

  it("isBad is tries exhausted", () => {
    expect(isBad(parseEntryFileName("p+0-3.conf")!)).toBe(true);
    expect(isBad(parseEntryFileName("p+1-2.conf")!)).toBe(false);
    expect(isBad(parseEntryFileName("p.conf")!)).toBe(false);
  });
});

describe("version comparison (strverscmp_improved-like)", () => {
  it.each([
    ["10", "9", 1],
    ["2", "10", -1],
    ["1.0", "1.0", 0],
    ["1.0~rc1", "1.0", -1],
    ["1.0", "1.0.1", -1],
    ["6.12.48", "6.12.9", 1],
    ["a", "b", -1],
    ["1a", "1", 1],
    ["007", "7", 0],
    ["1", "a", 1],
  ])("%s vs %s", (a, b, sign) => expect(Math.sign(compareVersions(a, b))).toBe(sign));
});

const ent = (file: string, version?: string, sortKey: string | undefined = SORT_KEY) => ({ name: parseEntryFileName(file)!, version, sortKey });

describe("systemd-boot entry order", () => {
  it("highest generation first, exhausted entries last, no sort-key after sort-key", () => {
    const order = sortEntries([
      ent("particle-13-1.conf", "1"),
      ent("particle-13-3+0-3.conf", "3"),
      ent("particle-13-2+2-1.conf", "2"),
      ent("debian-6.12.conf", undefined, undefined),
      ent("particle-13-4.conf", "10"),
    ]).map((e) => e.name.file);
    expect(order).toEqual(["particle-13-4.conf", "particle-13-2+2-1.conf", "particle-13-1.conf", "debian-6.12.conf", "particle-13-3+0-3.conf"]);
  });

  it.each([
    ["sort-key ascending", ent("x.conf", "1", "a"), ent("y.conf", "9", "b"), -1],
    ["same key: version descending", ent("x.conf", "2"), ent("y.conf", "10"), 1],
    ["same version: id descending", ent("particle-1.conf", "1"), ent("particle-2.conf", "1"), 1],
    ["identical: more tries left first", ent("p+3.conf", "1"), ent("p+2-1.conf", "1"), -1],
  ])("%s", (_n, a, b, sign) => expect(Math.sign(compareEntries(a, b))).toBe(sign));

  it.each([
    [[], 1],
    [["1", "2", undefined], 3],
    [["9", "10", "junk"], 11],
  ])("nextGeneration(%j) = %d", (vs, want) => expect(nextGeneration(vs as string[])).toBe(want));

  it.each([
    ["particle-*", "particle-13-2.conf", true],
    ["particle-*", "debian.conf", false],
    ["PARTICLE-*.conf", "particle-1-1.conf", true],
    ["particle-1?-*", "particle-13-1.conf", true],
    ["particle-[0-9]*", "particle-x.conf", false],
    ["a.conf", "abconf", false],
  ])("glob %s ~ %s", (p, s, want) => expect(globMatch(p, s)).toBe(want));
});

describe("the entry of a deployment", () => {
  const manifest = { id: "2", imageDigest: "a".repeat(64), version: "13", created: "2026-11-25T21:00:00.000Z", kernel: "6.12.48-amd64" };

  it("renders the whole entry", () => {
    const r = renderDeploymentEntry({ manifest, rootUuid: "1111-2222", linux: `/particle/${"b".repeat(64)}/vmlinuz`, initrd: `/particle/${"c".repeat(64)}/initrd.img`, generation: 5, extraArgs: ["console=ttyS0"] });
    expect(r.file).toBe("particle-13-2+3.conf");
    const e = parseEntry(r.text);
    expect(getKey(e, "title")).toBe("Particle-OS 13 (deployment 2, 6.12.48-amd64)");
    expect(getKey(e, "version")).toBe("5");
    expect(getKey(e, "sort-key")).toBe("particle");
    expect(getKey(e, "linux")).toBe(`/particle/${"b".repeat(64)}/vmlinuz`);
    expect(getAll(e, "initrd")).toEqual([`/particle/${"c".repeat(64)}/initrd.img`]);
    expect(getOptions(e)).toBe(`root=UUID=1111-2222 rw particle.deploy=2 particle.image=${"a".repeat(64)} console=ttyS0`);
    expect(r.text.startsWith("# Particle-OS deployment 2")).toBe(true);
  });

  it("title without a version uses the staging time", () => {
    expect(entryTitle({ ...manifest, version: undefined, kernel: undefined })).toBe("Particle-OS 2026-11-25 21:00 (deployment 2)");
  });

  it("deploymentArgs are what particle-boot reads", () => {
    expect(deploymentArgs("U", manifest)).toEqual(["root=UUID=U", "rw", "particle.deploy=2", `particle.image=${"a".repeat(64)}`]);
  });
});
