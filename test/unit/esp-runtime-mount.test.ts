import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { espRuntimeUnits, parseLoaderPartUuid, writeEspRuntimeMount } from "../../boot/src/esp-mount.ts";

const GUID = "1B2C3D4E-5F60-4172-8394-A5B6C7D8E9F0";
/** An efivarfs file as the kernel shows it: attributes (NV|BS|RT), then the UTF-16LE string. */
const efivar = (s: string) => Buffer.concat([Buffer.from([7, 0, 0, 0]), Buffer.from(`${s}\0`, "utf16le")]);

describe("LoaderDevicePartUUID (the ESP systemd-boot started from)", () => {
  it.each([
    ["systemd-boot's upper-case GUID", efivar(GUID), GUID.toLowerCase()],
    ["no NUL terminator", Buffer.concat([Buffer.from([7, 0, 0, 0]), Buffer.from(GUID, "utf16le")]), GUID.toLowerCase()],
    ["not a GUID", efivar("hello"), undefined],
    ["attributes only", Buffer.from([7, 0, 0, 0]), undefined],
    ["empty", Buffer.alloc(0), undefined],
  ])("%s", (_n, bytes, want) => expect(parseLoaderPartUuid(bytes)).toBe(want));
});

describe("the runtime ESP mount of a transient /etc", () => {
  const dir = mkdtempSync(join(tmpdir(), "particle-esp-runtime-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const tree = join(dir, "tree");
  mkdirSync(join(tree, "efi"), { recursive: true });

  it("mounts the partition by its UUID where the tree has a mount point, wanted by local-fs.target", () => {
    const [unit, link] = espRuntimeUnits(tree, GUID.toLowerCase());
    expect(unit!.path).toBe("efi.mount");
    expect(unit!.text).toMatch(/^What=\/dev\/disk\/by-partuuid\/1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0$/m);
    expect(unit!.text).toMatch(/^Where=\/efi$/m);
    expect(link).toEqual({ path: "local-fs.target.wants/efi.mount", link: "../efi.mount" });
  });

  it("writes the units under run/systemd/system, or warns when the loader named no ESP", () => {
    const run = join(dir, "run");
    writeFileSync(join(dir, "var-ok"), efivar(GUID));
    expect(writeEspRuntimeMount(run, tree, join(dir, "var-ok"))).toBeUndefined();
    expect(readFileSync(join(run, "systemd/system/efi.mount"), "utf8")).toMatch(/by-partuuid\/1b2c3d4e/);
    expect(readlinkSync(join(run, "systemd/system/local-fs.target.wants/efi.mount"))).toBe("../efi.mount");
    expect(writeEspRuntimeMount(join(dir, "run2"), tree, join(dir, "no-such-var"))).toMatch(/^particle\.etc=transient: the boot loader reported no ESP/);
  });
});
