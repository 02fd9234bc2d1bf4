import { describe, expect, it } from "vitest";
import { parseOverlayroot, parseOverlayrootConf, resolveOverlayroot } from "../../boot/src/overlayroot.ts";

describe("parseOverlayroot accepts Ubuntu's syntax", () => {
  it.each([
    ["", { mode: "disabled" }],
    ["disabled", { mode: "disabled" }],
    ["tmpfs", { mode: "tmpfs", swap: false, recurse: true }],
    ["tmpfs:swap=1", { mode: "tmpfs", swap: true, recurse: true }],
    ["tmpfs:swap=1,recurse=0", { mode: "tmpfs", swap: true, recurse: false }],
    ["tmpfs:recurse=0", { mode: "tmpfs", swap: false, recurse: false }],
    ["device:dev=/dev/vdb", { mode: "device", dev: "/dev/vdb", swap: false, recurse: true, fsTypes: ["ext4", "xfs", "btrfs"] }],
    ["device:dev=/dev/vdb,timeout=180,mkfs=0", { mode: "device", dev: "/dev/vdb", timeout: 180, swap: false, recurse: true, fsTypes: ["ext4", "xfs", "btrfs"] }],
    ["device:dev=LABEL=rw", { mode: "device", dev: "/dev/disk/by-label/rw", swap: false, recurse: true, fsTypes: ["ext4", "xfs", "btrfs"] }],
    ["device:dev=UUID=1234-ab,fstype=ext4", { mode: "device", dev: "/dev/disk/by-uuid/1234-ab", swap: false, recurse: true, fsTypes: ["ext4"] }],
    ["device:dev=/dev/vdb,fstype=xfs/ext4,recurse=0", { mode: "device", dev: "/dev/vdb", swap: false, recurse: false, fsTypes: ["xfs", "ext4"] }],
  ])("%j", (value, cfg) => expect(parseOverlayroot(value)).toEqual(cfg));
});

describe("parseOverlayroot refuses, naming the setting and the reason", () => {
  it.each([
    ["tmpfs2", /unknown mode "tmpfs2"/],
    ["crypt:dev=/dev/vdb", /crypt mode is not supported/],
    ["disabled:x=1", /takes no options/],
    ["tmpfs:swap", /not KEY=VALUE/],
    ["tmpfs:swap=yes", /swap=yes: expected 0 or 1/],
    ["tmpfs:dev=/dev/vdb", /unknown option "dev" for tmpfs/],
    ["tmpfs:swap=1,swap=0", /given twice/],
    ["device", /needs dev=DEVICE/],
    ["device:timeout=10", /needs dev=DEVICE/],
    ["device:dev=/dev/vdb,mkfs=1", /mkfs=1 is not supported/],
    ["device:dev=/dev/vdb,timeout=soon", /timeout=soon/],
    ["device:dev=/dev/vdb,fstype=Ext4", /fstype=Ext4: "Ext4" is not a filesystem type/],
    ["device:dev=/dev/vdb,fstype=ext4/", /"" is not a filesystem type/],
  ])("%j", (value, why) => {
    expect(() => parseOverlayroot(value)).toThrow(/^overlayroot=/);
    expect(() => parseOverlayroot(value)).toThrow(why);
  });
});

describe("parseOverlayrootConf", () => {
  it.each([
    ["", undefined],
    ["# overlayroot=tmpfs\n", undefined],
    ['overlayroot=""\n', ""],
    ['overlayroot="tmpfs:swap=1,recurse=0"\n', "tmpfs:swap=1,recurse=0"],
    ["overlayroot='tmpfs'\n", "tmpfs"],
    ["overlayroot=tmpfs # comment\n", "tmpfs"],
    ['  overlayroot="tmpfs"  \noverlayroot_cfgdisk="disabled"\n', "tmpfs"],
    ['overlayroot="tmpfs"\noverlayroot="disabled"\n', "disabled"],
  ])("%j", (text, value) => expect(parseOverlayrootConf(text)).toBe(value));
});

describe("resolveOverlayroot: the command line wins", () => {
  it("command line over file", () => {
    expect(resolveOverlayroot({ mode: "disabled" }, "tmpfs", "/etc/overlayroot.conf")).toEqual({ mode: "disabled" });
  });
  it("file when the command line is silent", () => {
    expect(resolveOverlayroot(undefined, "tmpfs", "/etc/overlayroot.conf")).toMatchObject({ mode: "tmpfs" });
  });
  it("neither: disabled", () => expect(resolveOverlayroot(undefined, undefined, "/x")).toEqual({ mode: "disabled" }));
  it("a bad file value names the file", () => {
    expect(() => resolveOverlayroot(undefined, "bogus", "/etc/overlayroot.conf")).toThrow(/^\/etc\/overlayroot\.conf: overlayroot=/);
  });
});
