// GRUB on the host, without a VM: `particle install --bootloader grub` to a disk image (real
// grub-mkimage, the ESP written with mtools), then the update cycle on a GRUB ESP in a directory:
// stage, one-shot rollback, bless, rollback, kargs, cleanup, each followed by a menu that passes
// grub-script-check and a grubenv that grub-editenv reads.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { particle, particleOk, stageJson } from "./lib/particle.ts";
import { makeTinyTree, esp as espOf } from "./install-helpers.ts";
import { writeDeploymentEntry } from "../../runtime/src/bootloader/deploy-entry.ts";
import { installGrub, HOST_GRUB_MODULES } from "../../runtime/src/bootloader/grub.ts";
import { readManifests } from "../../runtime/src/deployments/read.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "particle-grub-host-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function scriptCheck(text: string): void {
  const f = join(dir, "check.cfg");
  writeFileSync(f, text);
  const r = spawnSync("grub-script-check", [f], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`grub-script-check: ${r.stdout}${r.stderr}\n${text}`);
}
const editenvList = (file: string): Record<string, string> =>
  Object.fromEntries(execFileSync("grub-editenv", [file, "list"], { encoding: "utf8" }).split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
const menuIds = (cfg: string) => [...cfg.matchAll(/^menuentry .* --id (\S+) \{$/gm)].map((m) => m[1]);
const defaultOf = (cfg: string) => /^set default=(\S+)$/m.exec(cfg)?.[1];

describe("install --bootloader grub", () => {
  let disk: string;
  let result: Record<string, string>;
  let initrd: string;
  beforeAll(() => {
    const tree = join(dir, "tree");
    makeTinyTree(tree);
    initrd = join(dir, "initrd.img");
    writeFileSync(initrd, Buffer.alloc(700_000, 7));
    disk = join(dir, "disk.img");
    const r = particle(["install", "--to-disk", disk, "--bootloader", "grub", "--source", `dir:${tree}`, "--size", "2G", "--initramfs", initrd, "--karg", "console=ttyS0", "--json"]);
    if (r.code !== 0) throw new Error(r.stderr);
    result = JSON.parse(r.stdout);
  });

  it("puts a GRUB EFI image at the removable-media path, and no systemd-boot", () => {
    const efi = espOf.read(disk, "EFI/BOOT/BOOTX64.EFI");
    expect(efi.subarray(0, 2).toString("latin1")).toBe("MZ");
    // grub-mkimage embeds the prefix and the modules' names.
    expect(efi.includes(Buffer.from("/grub"))).toBe(true);
    expect(efi.includes(Buffer.from("loadenv"))).toBe(true);
    expect(espOf.list(disk, "EFI")).toEqual(["BOOT"]);
    expect(espOf.list(disk, "loader")).toEqual(["entries"]);
  });

  it("writes the entry without a systemd-boot counter, and a menu naming its kernel, initrd and options", () => {
    expect(result.entry).toBe("particle-13-1.conf");
    expect(espOf.list(disk, "loader/entries")).toEqual(["particle-13-1.conf"]);
    const cfg = espOf.read(disk, "grub/particle.cfg").toString();
    scriptCheck(cfg);
    scriptCheck(espOf.read(disk, "grub/grub.cfg").toString());
    expect(menuIds(cfg)).toEqual(["particle-1"]);
    expect(defaultOf(cfg)).toBe("particle-1");
    const linux = /^ {2}linux (\S+) (.*)$/m.exec(cfg)!;
    expect(linux[2]).toBe(`root=UUID=${result.rootUuid} rw particle.deploy=1 particle.image=${result.imageDigest} console=ttyS0`);
    // The files the menu names are on the ESP.
    expect(espOf.read(disk, linux[1]!.slice(1)).length).toBe(1_500_000);
    const initrdPath = /^ {2}initrd (\S+)$/m.exec(cfg)![1]!;
    expect(espOf.read(disk, initrdPath.slice(1)).equals(readFileSync(initrd))).toBe(true);
  });

  it("writes a 1024-byte grubenv that grub-editenv reads", () => {
    const f = join(dir, "env-from-disk");
    writeFileSync(f, espOf.read(disk, "grub/particle.env"));
    expect(statSync(f).size).toBe(1024);
    // The first deployment is counted too; with nothing to fall back to the menu does not count it.
    expect(editenvList(f)).toEqual({ particle_counted: "1", boot_counter: "3", boot_success: "0" });
  });
});

describe("the update cycle on a GRUB ESP", () => {
  let sysroot: string;
  let esp: string;
  const ROOT_UUID = "0b5c7d2e-1111-4222-8333-944455556666";
  let A: string, B: string, C: string;
  const menu = () => {
    const t = readFileSync(join(esp, "grub/particle.cfg"), "utf8");
    scriptCheck(t);
    return t;
  };
  const env = () => editenvList(join(esp, "grub/particle.env"));
  const as = (id: string | null) => ["--sysroot", sysroot, "--esp", esp, "--cmdline", id ? `root=UUID=${ROOT_UUID} rw particle.deploy=${id} particle.image=x` : ""];
  const stage = (name: string, fill: number): string => {
    const root = join(dir, name);
    makeTinyTree(root, { kernelBytes: Buffer.alloc(1_000_000, fill) });
    writeFileSync(join(root, "only-in"), name);
    const r = stageJson(`dir:${root}`, sysroot);
    const initrd = join(dir, `initrd-${r.id}`);
    writeFileSync(initrd, Buffer.alloc(200_000, fill));
    const m = readManifests(sysroot).find((x) => x.id === r.id)!;
    writeDeploymentEntry({ esp, manifest: m, rootUuid: ROOT_UUID, kernel: join(root, "usr/lib/modules/6.12.0-fake/vmlinuz"), initrd, extraArgs: ["console=ttyS0"] });
    return r.id;
  };

  beforeAll(async () => {
    sysroot = join(dir, "sysroot");
    esp = join(dir, "esp");
    mkdirSync(sysroot);
    mkdirSync(esp);
    await installGrub(esp, HOST_GRUB_MODULES);
  });

  it("stage A then B: B is the default, counted with 3 tries, A the fallback", () => {
    A = stage("a", 1);
    B = stage("b", 2);
    const t = menu();
    expect(menuIds(t)).toEqual([`particle-${B}`, `particle-${A}`]);
    expect(defaultOf(t)).toBe(`particle-${B}`);
    expect(t).toContain(`set fallback=particle-${A}`);
    expect(env()).toEqual({ particle_counted: B, boot_counter: "3", boot_success: "0" });
    const s = JSON.parse(particleOk(["status", "--json", ...as(A)]));
    expect([s.status.booted.id, s.status.staged.id]).toEqual([A, B]);
  });

  it("rollback --once sets next_entry and leaves the default and its counting alone", () => {
    const r = JSON.parse(particleOk(["rollback", "--once", "--json", ...as(A)]));
    expect(r).toMatchObject({ target: A, once: true, nextEntry: `particle-${A}` });
    expect(defaultOf(menu())).toBe(`particle-${B}`);
    expect(env()).toEqual({ particle_counted: B, boot_counter: "3", boot_success: "0", next_entry: `particle-${A}` });
  });

  it("bless on a fallback (A) leaves B's counter; bless on B marks it good", () => {
    const onA = JSON.parse(particleOk(["bless", "--json", ...as(A)]));
    expect(onA.changed).toBe(false);
    expect(env().boot_counter).toBe("3");
    const onB = JSON.parse(particleOk(["bless", "--json", ...as(B)]));
    expect(onB.changed).toBe(true);
    expect(env()).toEqual({ particle_counted: B, boot_success: "1", next_entry: `particle-${A}` });
  });

  it("rollback makes A the default in the menu and stops counting", () => {
    particleOk(["rollback", ...as(B)]);
    const t = menu();
    expect(menuIds(t)).toEqual([`particle-${A}`, `particle-${B}`]);
    expect(defaultOf(t)).toBe(`particle-${A}`);
    expect(env()).toEqual({ next_entry: `particle-${A}` });
  });

  it("kargs edits show up in the menu", () => {
    particleOk(["kargs", B, "--append", "quiet", ...as(A)]);
    expect(menu()).toMatch(new RegExp(`particle\\.deploy=${B} particle\\.image=[0-9a-f]{64} console=ttyS0 quiet\\n`));
  });

  it("cleanup drops removed deployments from the menu, and every file the menu names stays", () => {
    C = stage("c", 3);
    particleOk(["rollback", ...as(A)]); // C called off: A default, C behind it, B last
    expect(menuIds(menu())).toEqual([`particle-${A}`, `particle-${C}`, `particle-${B}`]);
    const r = JSON.parse(particleOk(["cleanup", "--json", ...as(A)]));
    expect(r.removedDeployments).toEqual([B]);
    const t = menu();
    expect(menuIds(t)).toEqual([`particle-${A}`, `particle-${C}`]);
    for (const p of t.matchAll(/^ {2}(?:linux|initrd) (\S+)/gm)) expect(existsSync(join(esp, p[1]!))).toBe(true);
  });

  it("particle grub-menu prints the same menu; bless and rollback --once refuse nothing on systemd-boot", () => {
    expect(particleOk(["grub-menu", "--esp", esp])).toBe(readFileSync(join(esp, "grub/particle.cfg"), "utf8"));
    const sdb = join(dir, "sdb-esp");
    mkdirSync(join(sdb, "loader/entries"), { recursive: true });
    const r = JSON.parse(particleOk(["bless", "--json", "--sysroot", sysroot, "--esp", sdb, "--cmdline", `particle.deploy=${A}`]));
    expect(r).toEqual({ grub: false, changed: false });
    const once = particle(["rollback", "--once", "--sysroot", sysroot, "--esp", sdb, "--cmdline", `particle.deploy=${A}`]);
    expect(once.code).toBe(2);
    expect(once.stderr).toMatch(/--once: only for a GRUB ESP/);
  });
});
