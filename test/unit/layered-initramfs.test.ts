import { describe, expect, it } from "vitest";
import { planLayeredInitramfs } from "../../runtime/src/layer/initramfs-plan.ts";
import type { UpperEntry } from "../../runtime/src/layer/upper.ts";

const KVER = "6.12.57+deb13-amd64";
const M = `usr/lib/modules/${KVER}`;
const dir = (path: string, extra: Partial<UpperEntry> = {}): UpperEntry => ({ path, kind: "dir", inLower: true, ...extra });
const added = (path: string): UpperEntry => ({ path, kind: "file", inLower: false });
const replaced = (path: string): UpperEntry => ({ path, kind: "file", inLower: true });
const plan = (entries: UpperEntry[], force = false) => planLayeredInitramfs({ kver: KVER, entries, force });

/** What `apt install hello acpi-call-dkms` leaves in the upper: DKMS's module, depmod's index, docs. */
const DKMS_LAYER: UpperEntry[] = [
  dir("usr"), dir("usr/bin"), added("usr/bin/hello"), dir("usr/lib"), dir("usr/lib/modules"), dir(M),
  dir(`${M}/updates`, { inLower: false }), dir(`${M}/updates/dkms`, { inLower: false }), added(`${M}/updates/dkms/acpi_call.ko.xz`),
  replaced(`${M}/modules.dep`), replaced(`${M}/modules.dep.bin`), replaced(`${M}/modules.alias.bin`),
  dir("usr/share"), added("usr/share/doc/hello/copyright"), replaced("usr/share/info/dir"),
  dir("var/lib/dpkg"), replaced("var/lib/dpkg/status"), { path: "var/lib/dpkg/status-old", kind: "whiteout", inLower: true },
];

describe("the initramfs of a layered deployment", () => {
  it("reuses the lower deployment's for a DKMS layer: added modules, a rewritten depmod index", () => {
    const p = plan(DKMS_LAYER);
    expect(p.reuseLower).toBe(true);
    expect(p.why).toMatch(/only added 2 file\(s\)/);
  });

  it("reuses it when nothing dracut reads changed, whatever else did", () => {
    expect(plan([dir("usr/share"), added("usr/share/doc/x"), replaced("etc/ld.so.cache"), { path: "usr/share/y", kind: "whiteout", inLower: true }])).toEqual({ reuseLower: true, why: "the layer changed none of the initramfs inputs" });
  });

  it("rebuilds when a file dracut may copy is replaced (apt upgraded udev or a library)", () => {
    expect(plan([...DKMS_LAYER, replaced("usr/lib/x86_64-linux-gnu/libudev.so.1.7.10")])).toEqual({ reuseLower: false, why: "the layer replaced /usr/lib/x86_64-linux-gnu/libudev.so.1.7.10, which dracut may copy" });
    expect(plan([replaced("usr/sbin/cryptsetup")]).reuseLower).toBe(false);
    // A replaced module (not the depmod index) is a replaced input too.
    expect(plan([replaced(`${M}/kernel/fs/erofs/erofs.ko.xz`)]).reuseLower).toBe(false);
    // The index of another kernel is not this kernel's index, and is not read for it either.
    expect(plan([replaced("usr/lib/modules/6.1.0-1-amd64/modules.dep")]).reuseLower).toBe(true);
  });

  it("rebuilds when an input is removed or hidden by an opaque directory", () => {
    expect(plan([{ path: "usr/lib/udev/rules.d/60-foo.rules", kind: "whiteout", inLower: true }])).toEqual({ reuseLower: false, why: "the layer removed /usr/lib/udev/rules.d/60-foo.rules, which dracut reads" });
    expect(plan([dir("usr/lib/systemd/system", { opaque: true })]).reuseLower).toBe(false);
    // An opaque directory above the inputs hides them all.
    expect(plan([dir("usr/lib", { opaque: true })]).reuseLower).toBe(false);
    // A whiteout of something the lower never had (apt made and removed a file) hides nothing.
    expect(plan([{ path: "usr/bin/tmpfile", kind: "whiteout", inLower: false }]).reuseLower).toBe(true);
    // An opaque directory the layer created (not in the lower) hides nothing.
    expect(plan([dir("usr/lib/dkms-new", { opaque: true, inLower: false })]).reuseLower).toBe(true);
  });

  it("rebuilds when the kernel image changes or dracut's configuration grows", () => {
    expect(plan([replaced(`${M}/vmlinuz`)])).toEqual({ reuseLower: false, why: `the layer changed the kernel image /${M}/vmlinuz` });
    expect(plan([added(`boot/vmlinuz-${KVER}`)]).reuseLower).toBe(false);
    expect(plan([added("etc/dracut.conf.d/90-zfs.conf")])).toEqual({ reuseLower: false, why: "the layer added dracut configuration /etc/dracut.conf.d/90-zfs.conf" });
    expect(plan([added("usr/lib/dracut/modules.d/90zfs/module-setup.sh")]).reuseLower).toBe(false);
  });

  it("rebuilds when asked (a layered storage driver needed before the root is mounted) or the kernel is unknown", () => {
    expect(plan(DKMS_LAYER, true)).toEqual({ reuseLower: false, why: "--rebuild-initramfs was given" });
    expect(planLayeredInitramfs({ kver: undefined, entries: [] }).reuseLower).toBe(false);
  });
});
