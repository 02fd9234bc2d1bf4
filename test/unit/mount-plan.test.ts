import { describe, expect, it } from "vitest";
import {
  composefsOverlayOptions,
  planDeploymentMount,
  planMoveIntoPlace,
  planRoot,
  planWritable,
  type Step,
} from "../../runtime/src/mounts/plan.ts";
import { decideVerity } from "../../runtime/src/mounts/verity-policy.ts";
import { mountContaining, mountsUnder, parseMountinfo } from "../../runtime/src/mounts/mountinfo.ts";

const base = { image: "/s/particle/images/d.erofs", objects: "/s/particle/objects", helperDir: "/h" };
const ops = (steps: Step[]) => steps.map((s) => s.op);

describe("composefsOverlayOptions", () => {
  it.each([
    ["require", ",verity=require"],
    ["on", ",verity=on"],
    ["off", ""],
  ] as const)("verity=%s", (v, tail) => {
    expect(composefsOverlayOptions("/h/meta", "/o", v)).toEqual([
      `metacopy=on,redirect_dir=on,lowerdir+=/h/meta,datadir+=/o${tail}`,
      `metacopy=on,redirect_dir=on,lowerdir=/h/meta::/o${tail}`,
    ]);
  });
  it.each(["/a,b", "/a:b", "/a\\b", "relative"])("refuses the layer path %s", (p) => {
    expect(() => composefsOverlayOptions(p, "/o", "off")).toThrow(/composefs metadata mount/);
  });
});

describe("planRoot", () => {
  it("composefs: EROFS at a helper dir, overlay at the target, helper detached", () => {
    const s = planRoot({ ...base, format: "composefs", target: "/t", verity: "require" });
    expect(ops(s)).toEqual(["mkdir", "image", "overlay", "detach", "rmdir"]);
    expect(s[1]).toEqual({ op: "image", image: base.image, target: "/h/meta", fsType: "erofs", loop: "fallback" });
    expect(s[2]).toMatchObject({ op: "overlay", target: "/t", readOnly: true });
    expect((s[2] as any).options[0]).toContain("verity=require");
  });
  it.each([
    ["erofs", "erofs", "fallback"],
    ["squashfs", "squashfs", "always"],
  ] as const)("%s mounts the image directly", (format, fsType, loop) => {
    expect(planRoot({ ...base, format, target: "/t", verity: "off" })).toEqual([{ op: "image", image: base.image, target: "/t", fsType, loop }]);
  });
});

describe("planWritable", () => {
  const persistent = { kind: "persistent", etcUpper: "/s/d/etc/upper", etcWork: "/s/d/etc/work", var: "/s/particle/var" } as const;
  it("none adds nothing", () => expect(planWritable({ root: "/t", target: "/t", helperDir: "/h", writable: { kind: "none" } })).toEqual([]));
  it("persistent: /etc overlay over the image's /etc, /var bind", () => {
    const s = planWritable({ root: "/t", target: "/t", helperDir: "/h", writable: persistent });
    expect(s).toEqual([
      { op: "mkdir", path: "/s/d/etc/upper" },
      { op: "mkdir", path: "/s/d/etc/work" },
      { op: "overlay", target: "/t/etc", readOnly: false, options: ["lowerdir=/t/etc,upperdir=/s/d/etc/upper,workdir=/s/d/etc/work"] },
      { op: "bind", source: "/s/particle/var", target: "/t/var", recursive: false },
    ]);
  });
  it("persistent with etc transient: /etc's upper on a fresh tmpfs (nothing from the disk's upper), /var still the shared bind", () => {
    const s = planWritable({ root: "/t", target: "/t", helperDir: "/h", writable: { ...persistent, etc: "transient" } });
    expect(s).toEqual([
      { op: "mkdir", path: "/h/etc-rw" },
      { op: "tmpfs", target: "/h/etc-rw", options: "mode=0755" },
      { op: "mkdir", path: "/h/etc-rw/upper" },
      { op: "mkdir", path: "/h/etc-rw/work" },
      { op: "overlay", target: "/t/etc", readOnly: false, options: ["lowerdir=/t/etc,upperdir=/h/etc-rw/upper,workdir=/h/etc-rw/work"] },
      { op: "detach", target: "/h/etc-rw" },
      { op: "rmdir", path: "/h/etc-rw" },
      { op: "bind", source: "/s/particle/var", target: "/t/var", recursive: false },
    ]);
    expect(JSON.stringify(s)).not.toContain("/s/d/etc");
  });
  it("tmpfs: one upper over the whole root, helpers detached", () => {
    const s = planWritable({ root: "/h/lower", target: "/t", helperDir: "/h", writable: { kind: "tmpfs" } });
    expect(ops(s)).toEqual(["mkdir", "tmpfs", "mkdir", "mkdir", "overlay", "detach", "detach", "rmdir"]);
    expect(s[4]).toEqual({ op: "overlay", target: "/t", readOnly: false, options: ["lowerdir=/h/lower,upperdir=/h/rw/upper,workdir=/h/rw/work"] });
  });
  it("device: Ubuntu's overlay/ and overlay-workdir/ on the device", () => {
    const s = planWritable({ root: "/h/lower", target: "/t", helperDir: "/h", writable: { kind: "device", device: "/dev/vdb", fsTypes: ["ext4"] } });
    expect(s[1]).toEqual({ op: "device", device: "/dev/vdb", target: "/h/rw", fsTypes: ["ext4"] });
    expect((s[4] as any).options[0]).toBe("lowerdir=/h/lower,upperdir=/h/rw/overlay,workdir=/h/rw/overlay-workdir");
  });
  it.each([
    [{ kind: "none" } as const, "/a", "/b"],
    [{ kind: "tmpfs" } as const, "/a", "/a"],
  ])("refuses a root/target combination that cannot work (%j)", (writable, root, target) => {
    expect(() => planWritable({ root, target, helperDir: "/h", writable })).toThrow(/planWritable/);
  });
});

describe("planDeploymentMount", () => {
  it("composefs + persistent mounts in place", () => {
    const s = planDeploymentMount({ ...base, format: "composefs", target: "/t", verity: "off", writable: { kind: "persistent", etcUpper: "/u", etcWork: "/w", var: "/v" } });
    expect(ops(s)).toEqual(["mkdir", "image", "overlay", "detach", "rmdir", "mkdir", "mkdir", "overlay", "bind"]);
  });
  it("overlayroot builds the read-only root in the helper dir", () => {
    const s = planDeploymentMount({ ...base, format: "erofs", target: "/t", verity: "off", writable: { kind: "tmpfs" } });
    expect(s[0]).toEqual({ op: "mkdir", path: "/h/lower" });
    expect(s[1]).toMatchObject({ op: "image", target: "/h/lower" });
    expect(s.at(-1)).toEqual({ op: "rmdir", path: "/h/lower" });
  });
});

describe("planMoveIntoPlace", () => {
  it("target == sysroot: physical root under the new root first, then the new root onto the target", () => {
    expect(planMoveIntoPlace({ sysroot: "/sysroot", target: "/sysroot", newRoot: "/run/w/lower", sysrootParentMount: "/" })).toEqual([
      { op: "private", target: "/" },
      { op: "move", source: "/sysroot", target: "/run/w/lower/sysroot" },
      { op: "move", source: "/run/w/lower", target: "/sysroot" },
    ]);
  });
  it("separate target: the physical root is bound in, not moved", () => {
    expect(planMoveIntoPlace({ sysroot: "/s", target: "/t", newRoot: "/n", sysrootParentMount: "/" })).toEqual([
      { op: "bind", source: "/s", target: "/n/sysroot", recursive: true },
      { op: "move", source: "/n", target: "/t" },
    ]);
  });
});

describe("decideVerity", () => {
  it.each([
    ["require", true, "require", "require"],
    [undefined, true, "require", "require"],
    ["optional", true, "on", "optional"],
    ["optional", false, "off", "optional"],
    [undefined, false, "off", "optional"],
    ["off", true, "off", "off"],
    ["off", false, "off", "off"],
  ] as const)("asked %s, kernel fs-verity %s → overlay %s", (asked, kernel, overlay, mode) => {
    const d = decideVerity(asked, kernel, "/img");
    expect(d.overlay).toBe(overlay);
    expect(d.mode).toBe(mode);
    expect(d.warnings.length > 0).toBe(!kernel && asked !== "off");
  });
  it("require without fs-verity is refused with a message naming the argument", () => {
    expect(() => decideVerity("require", false, "/img")).toThrow(/particle\.verity=require.*\/img/);
  });
});

const MOUNTINFO = [
  "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "30 22 0:30 / /sysroot rw shared:5 - ext4 /dev/vdb rw",
  "31 30 0:31 / /sysroot/boot rw - vfat /dev/vdb1 rw",
  "32 22 0:32 / /a\\040b rw - tmpfs tmpfs rw",
  "33 30 0:33 / /sysroot/boot rw - tmpfs tmpfs rw",
  "34 22 0:34 / /sysrootx rw - tmpfs tmpfs rw",
].join("\n");

describe("mountinfo", () => {
  const e = parseMountinfo(MOUNTINFO);
  it("parses fields, propagation and octal escapes", () => {
    expect(e[0]).toMatchObject({ id: 22, parent: 1, mountPoint: "/", fsType: "ext4", source: "/dev/vda", propagation: ["shared:1"] });
    expect(e[3]!.mountPoint).toBe("/a b");
    expect(e[2]!.propagation).toEqual([]);
  });
  it("orders unmounts deepest first, stacked mounts newest first, and ignores look-alike prefixes", () => {
    expect(mountsUnder(e, "/sysroot").map((m) => m.id)).toEqual([33, 31, 30]);
  });
  it("finds the mount holding a path", () => {
    expect(mountContaining(e, "/sysroot/boot/x")!.id).toBe(33);
    expect(mountContaining(e, "/sysrootx")!.id).toBe(34);
    expect(mountContaining(e, "/etc")!.id).toBe(22);
  });
  it("refuses a malformed line", () => expect(() => parseMountinfo("1 2 3")).toThrow(/malformed/));
});
