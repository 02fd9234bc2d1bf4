import { describe, expect, it } from "vitest";
import { DEFAULT_PATTERN, parseLoaderConf, predictDefault, renderLoaderConf } from "../../runtime/src/bls/loader-conf.ts";
import { bootFileEntryPath, digestOfEntryPath } from "../../runtime/src/bootloader/esp.ts";
import { loadEntry, planPromote } from "../../runtime/src/bootloader/entries.ts";
import { getKey, parseEntry } from "../../runtime/src/bls/entry.ts";

describe("loader.conf", () => {
  it("renders the glob default, timeout and editor", () => {
    const text = renderLoaderConf();
    expect(text).toContain(`default ${DEFAULT_PATTERN}\n`);
    expect(text).toContain("timeout 3\n");
    expect(text).toContain("editor yes\n");
    expect(text).not.toContain("console-mode");
  });

  it.each([
    [{ timeout: 0, editor: false, consoleMode: "max" as const }, ["timeout 0", "editor no", "console-mode max"]],
    [{ default: "particle-13-2.conf" }, ["default particle-13-2.conf"]],
  ])("options %j", (conf, lines) => {
    const text = renderLoaderConf(conf);
    for (const l of lines) expect(text.split("\n")).toContain(l);
  });

  it("refuses a negative timeout", () => expect(() => renderLoaderConf({ timeout: -1 })).toThrow());

  it("parses back what it renders, ignoring comments and unknown lines", () => {
    expect(parseLoaderConf(renderLoaderConf({ timeout: 5 }))).toEqual({ default: DEFAULT_PATTERN, timeout: "5" });
    expect(parseLoaderConf("# default x\nbeep yes\n  default   arch-*  \n")).toEqual({ default: "arch-*" });
  });

  it.each([
    [["particle-13-3.conf", "particle-13-2.conf", "debian.conf"], "particle-*", "particle-13-3.conf"],
    [["debian.conf", "particle-13-2.conf"], "particle-*", "particle-13-2.conf"],
    [["debian.conf", "particle-13-2.conf"], "nomatch-*", "debian.conf"],
    [["debian.conf", "particle-13-2.conf"], undefined, "debian.conf"],
    [["a.conf", "particle-1-1.conf"], "particle-1-1.conf", "particle-1-1.conf"],
    [[], "particle-*", undefined],
  ])("predictDefault(%j, %j)", (ids, pattern, want) => expect(predictDefault(ids, pattern)).toBe(want));
});

describe("ESP paths", () => {
  const d = "ab".repeat(32);
  it("one directory per content digest", () => {
    expect(bootFileEntryPath(d, "vmlinuz")).toBe(`/particle/${d}/vmlinuz`);
    expect(digestOfEntryPath(`/particle/${d}/initrd.img`)).toBe(d);
    expect(digestOfEntryPath(`particle/${d}/vmlinuz`)).toBe(d);
    expect(digestOfEntryPath("/debian/6.12/linux")).toBeUndefined();
    expect(digestOfEntryPath(`/particle/${d}/x/vmlinuz`)).toBeUndefined();
  });
});

describe("promoting an entry", () => {
  const text = "title T\nversion 2\nsort-key particle\nlinux /k\ninitrd /i\noptions root=UUID=u rw particle.deploy=1 particle.image=x\n";
  it("rewrites the version in place, same file", () => {
    const p = planPromote(loadEntry("particle-13-1.conf", text)!, 7);
    expect(p.file).toBe("particle-13-1.conf");
    expect(p.removeOld).toBeUndefined();
    expect(getKey(parseEntry(p.text), "version")).toBe("7");
    expect(p.text.replace("version 7", "version 2").replace("version    7", "version 2")).toBe(text);
  });
  it("keeps a running counter", () => {
    expect(planPromote(loadEntry("particle-13-1+2-1.conf", text)!, 3).file).toBe("particle-13-1+2-1.conf");
  });
  it("gives an exhausted entry fresh tries under a new name", () => {
    const p = planPromote(loadEntry("Particle-13-1+0-3.conf", text)!, 3);
    expect(p).toMatchObject({ file: "Particle-13-1+3.conf", removeOld: "Particle-13-1+0-3.conf" });
  });
  it("loadEntry reads the deployment from the options", () => {
    expect(loadEntry("particle-13-1.conf", text)).toMatchObject({ deployId: "1", version: "2", sortKey: "particle", linux: "/k", initrd: ["/i"] });
    expect(loadEntry("debian.conf", "title d\nlinux /l\n")!.deployId).toBeUndefined();
    expect(loadEntry("x.txt", text)).toBeUndefined();
  });
});
