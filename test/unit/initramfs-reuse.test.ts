import { describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initramfsInputsKey, reusableInitramfs } from "../../runtime/src/deployments/initramfs-reuse.ts";

const KVER = "6.12.0-1-amd64";

function tree(): string {
  const d = mkdtempSync(join(tmpdir(), "initramfs-reuse-"));
  for (const dir of [`usr/lib/modules/${KVER}/kernel`, "usr/lib/dracut/modules.d/90particle", "usr/bin", "usr/share/doc", "etc/dracut.conf.d", "boot"]) mkdirSync(join(d, dir), { recursive: true });
  writeFileSync(join(d, `usr/lib/modules/${KVER}/kernel/erofs.ko`), "module");
  writeFileSync(join(d, "usr/lib/dracut/modules.d/90particle/module-setup.sh"), "install() { :; }");
  writeFileSync(join(d, "usr/bin/particle-boot"), "boot");
  writeFileSync(join(d, "usr/share/doc/README"), "docs");
  writeFileSync(join(d, `boot/vmlinuz-${KVER}`), "kernel");
  return d;
}
const key = (d: string) => initramfsInputsKey(d, KVER, join(d, `boot/vmlinuz-${KVER}`));
/** A second tree with the same paths, modes and mtimes (as staging and cp -a keep them). */
function copy(_d: string): string {
  const c = tree();
  for (const d of [_d, c]) for (const f of FILES) utimesSync(join(d, f), 1_700_000_000, 1_700_000_000);
  return c;
}
const FILES = [`usr/lib/modules/${KVER}/kernel/erofs.ko`, "usr/lib/dracut/modules.d/90particle/module-setup.sh", "usr/bin/particle-boot", "usr/share/doc/README", `boot/vmlinuz-${KVER}`];

describe("initramfs reuse key", () => {
  it("is the same for a copy with the same metadata, and ignores files dracut does not read", () => {
    const a = tree();
    const b = copy(a);
    writeFileSync(join(b, "usr/share/doc/README"), "changed docs of another size");
    mkdirSync(join(b, "usr/share/particle-test"));
    expect(key(b)).toBe(key(a));
  });
  it.each([
    ["a kernel module", `usr/lib/modules/${KVER}/kernel/erofs.ko`],
    ["the dracut module", "usr/lib/dracut/modules.d/90particle/module-setup.sh"],
    ["particle-boot", "usr/bin/particle-boot"],
    ["a dracut configuration file", "etc/dracut.conf.d/10-x.conf"],
    ["the kernel (same size, other bytes)", `boot/vmlinuz-${KVER}`],
  ])("changes when %s changes", (_what, rel) => {
    const a = tree();
    const b = copy(a);
    writeFileSync(join(b, rel), rel.includes("vmlinuz") ? "KERNEL" : "changed contents");
    expect(key(b)).not.toBe(key(a));
  });
});

describe("reusableInitramfs", () => {
  const esp = mkdtempSync(join(tmpdir(), "esp-"));
  mkdirSync(join(esp, "particle/abc"), { recursive: true });
  writeFileSync(join(esp, "particle/abc/initrd.img"), "initrd");
  it.each([
    ["no initrd in the booted entry", undefined, "k", "k", /names no initramfs/],
    ["different inputs", "/particle/abc/initrd.img", "k1", "k2", /differ/],
    ["a missing file", "/particle/zzz/initrd.img", "k", "k", /missing/],
  ])("refuses with %s", (_w, bootedInitrd, bootedKey, newKey, why) => {
    const r = reusableInitramfs({ esp, bootedInitrd, bootedKey, newKey });
    expect("why" in r && r.why).toMatch(why);
  });
  it("gives the ESP path when the keys match", () => {
    expect(reusableInitramfs({ esp, bootedInitrd: "/particle/abc/initrd.img", bootedKey: "k", newKey: "k" })).toEqual({ path: join(esp, "particle/abc/initrd.img") });
  });
});
