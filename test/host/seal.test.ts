// Issue 11 on the host: the owner's keys, `particle seal` (UKI built onto the host's systemd-stub,
// signed with sbsign), and what a sealed machine does with it. The digest sealed at build time is
// the one `particle stage` computes later on another sysroot (the reproducible EROFS image).
import { execFileSync, spawnSync } from "node:child_process";
import { createPublicKey, verify } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peSections, readSection } from "../../runtime/src/uki/pe.ts";
import { MEASURED_SECTIONS, policyPcrDigest, predictPcr11 } from "../../runtime/src/seal/pcr11.ts";
import { makeFixture, deterministicBytes } from "./lib/fixture.ts";
import { particle, particleOk, stageJson } from "./lib/particle.ts";

const STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const KVER = "6.12.0-test";

describe("particle keys and particle seal (issue 11)", () => {
  const work = mkdtempSync(join(tmpdir(), "particle-seal-test-"));
  const keys = join(work, "keys");
  const tree = join(work, "tree");
  const initrd = join(work, "initrd.img");
  const uki = join(work, "v1.efi");
  let sealed: Record<string, any>;

  beforeAll(() => {
    particleOk(["keys", "create", keys]);
    makeFixture(tree);
    mkdirSync(join(tree, "usr/lib/modules", KVER), { recursive: true });
    // Stand-ins: this UKI is checked, not booted (test/qemu/sealed.test.ts boots real ones).
    writeFileSync(join(tree, "usr/lib/modules", KVER, "vmlinuz"), deterministicBytes(300_000, 1));
    writeFileSync(join(tree, "etc/os-release"), 'ID=debian\nVERSION_ID="13"\n');
    writeFileSync(initrd, deterministicBytes(200_000, 2));
    sealed = JSON.parse(particleOk(["seal", `dir:${tree}`, "--keys", keys, "--initramfs", initrd, "--out", uki, "--stub", STUB, "--version", "1", "--karg", "console=ttyS0", "--json"]));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("keys create makes PK, KEK, db and their signed lists, and refuses to overwrite them", () => {
    for (const k of ["PK", "KEK", "db"]) for (const ext of ["key", "crt", "esl", "auth"]) expect(existsSync(join(keys, `${k}.${ext}`)), `${k}.${ext}`).toBe(true);
    for (const f of ["tpm2-pcr-private.pem", "tpm2-pcr-public.pem"]) expect(existsSync(join(keys, f)), f).toBe(true);
    const again = particle(["keys", "create", keys]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not empty; refusing to overwrite/);
  });

  it("seal pins the image digest that particle stage computes on another sysroot", () => {
    const staged = stageJson(`dir:${tree}`, join(work, "machine"));
    expect(sealed.imageDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(staged.imageDigest).toBe(sealed.imageDigest);
  });

  it("the UKI carries the kernel, the initramfs, os-release and the sealed command line, signed with db", () => {
    const bytes = readFileSync(uki);
    expect(peSections(bytes).map((s) => s.name)).toEqual(expect.arrayContaining([".osrel", ".cmdline", ".initrd", ".linux"]));
    expect(readSection(bytes, ".cmdline")!.toString()).toBe(`root=LABEL=particle-root rw particle.image=${sealed.imageDigest} console=ttyS0`);
    expect(readSection(bytes, ".linux")).toEqual(readFileSync(join(tree, "usr/lib/modules", KVER, "vmlinuz")));
    expect(readSection(bytes, ".initrd")).toEqual(readFileSync(initrd));
    expect(readSection(bytes, ".osrel")!.toString()).toContain('IMAGE_VERSION="1"');
    expect(spawnSync("sbverify", ["--cert", join(keys, "db.crt"), uki]).status).toBe(0);
    // One changed byte of the command line and the signature no longer verifies.
    const tampered = Buffer.from(bytes);
    const at = peSections(tampered).find((s) => s.name === ".cmdline")!.rawOffset + "root=LABEL=particle-root rw particle.image=".length;
    tampered[at] = tampered[at] === 0x30 ? 0x31 : 0x30;
    writeFileSync(join(work, "tampered.efi"), tampered);
    expect(spawnSync("sbverify", ["--cert", join(keys, "db.crt"), join(work, "tampered.efi")]).status).not.toBe(0);
  });

  it("the UKI carries the PCR 11 public key and a policy signature for what the stub will measure", () => {
    const bytes = readFileSync(uki);
    const pub = createPublicKey(readFileSync(join(keys, "tpm2-pcr-public.pem")));
    expect(createPublicKey(readSection(bytes, ".pcrpkey")!).export({ type: "spki", format: "der" })).toEqual(pub.export({ type: "spki", format: "der" }));
    const measured = peSections(bytes).filter((s) => MEASURED_SECTIONS.includes(s.name as never)).map((s) => ({ name: s.name, data: readSection(bytes, s.name)! }));
    // The stub's own .sbat is measured as well.
    expect(measured.map((s) => s.name).sort()).toEqual([".cmdline", ".initrd", ".linux", ".osrel", ".pcrpkey", ".sbat"]);
    const pol = policyPcrDigest(predictPcr11(measured));
    const e = JSON.parse(readSection(bytes, ".pcrsig")!.toString()).sha256[0];
    expect(e.pol).toBe(pol.toString("hex"));
    expect(verify("sha256", pol, pub, Buffer.from(e.sig, "base64"))).toBe(true);
  });

  it("seal names a key directory that is not one", () => {
    const r = particle(["seal", `dir:${tree}`, "--keys", tree, "--initramfs", initrd, "--out", join(work, "x.efi"), "--stub", STUB]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${tree}: not a key directory (no db.key`);
  });

  describe("on a sealed machine", () => {
    const sysroot = join(work, "sealed");
    const esp = join(work, "esp");
    beforeAll(() => {
      mkdirSync(join(esp, "loader"), { recursive: true });
      writeFileSync(join(esp, "loader/particle-sealed"), "sealed\n");
      writeFileSync(join(esp, "loader/loader.conf"), "default particle-*\n");
    });

    it("stage refuses an image without a UKI, or whose UKI pins another image, and leaves nothing", () => {
      const other = join(work, "other");
      makeFixture(other);
      writeFileSync(join(other, "extra"), "not in v1\n");
      // A bootable tree (a kernel), so that only the pin can refuse it.
      mkdirSync(join(other, "usr/lib/modules", KVER), { recursive: true });
      writeFileSync(join(other, "usr/lib/modules", KVER, "vmlinuz"), deterministicBytes(300_000, 1));
      const none = particle(["stage", `dir:${other}`, "--sysroot", sysroot, "--esp", esp]);
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/this machine is sealed: particle stage needs --uki/);
      const wrong = particle(["stage", `dir:${other}`, "--sysroot", sysroot, "--esp", esp, "--uki", uki]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(new RegExp(`--uki ${uki}: pins image ${sealed.imageDigest}, not the staged image [0-9a-f]{64}; refused, deployment 1 removed again`));
      expect(readdirSync(join(sysroot, "particle/deploy")).filter((n) => !n.startsWith("."))).toEqual([]);
      expect(existsSync(join(esp, "EFI/Linux"))).toBe(false);
      const notUki = particle(["stage", `dir:${other}`, "--sysroot", sysroot, "--esp", esp, "--uki", initrd]);
      expect(notUki.code).toBe(1);
      expect(notUki.stderr).toContain(`--uki ${initrd}: not a PE image`);
    });

    it("stage installs the UKI that pins the image as a Type #2 entry with boot counting", () => {
      const r = JSON.parse(particleOk(["stage", `dir:${tree}`, "--sysroot", sysroot, "--esp", esp, "--uki", uki, "--json"]));
      expect(r.entry).toBe(`particle-1-${sealed.imageDigest.slice(0, 12)}+3.efi`);
      expect(readFileSync(join(esp, "EFI/Linux", r.entry))).toEqual(readFileSync(uki));
    });

    it("kargs says the command line is sealed and how to re-seal; status says sealed: yes", () => {
      const k = particle(["kargs", "--sysroot", sysroot, "--esp", esp, "--cmdline", "", "--append", "quiet"]);
      expect(k.code).toBe(1);
      expect(k.stderr).toMatch(/command line is sealed.*particle seal SOURCE --keys DIR --karg ARG/);
      const st = particle(["status", "--sysroot", sysroot, "--esp", esp, "--cmdline", ""]);
      expect(st.stdout).toMatch(/^Sealed: yes/m);
      expect(JSON.parse(particleOk(["status", "--sysroot", sysroot, "--esp", esp, "--cmdline", "", "--json"])).status.bootloader.sealed).toBe(true);
      // The UKI is the deployment's entry, and the default (nothing is booted here: it is staged).
      const h = JSON.parse(particleOk(["status", "--sysroot", sysroot, "--esp", esp, "--cmdline", "", "--json"]));
      expect(h.spec.defaultDeployment).toBe("1");
      expect(h.status.staged.bootEntry.file).toBe(`particle-1-${sealed.imageDigest.slice(0, 12)}+3.efi`);
      expect(h.status.staged.bootEntry.triesLeft).toBe(3);
    });

    it("a second UKI becomes the default; rollback gives it no tries left, and the first is the default again", () => {
      const tree2 = join(work, "tree2");
      execFileSync("cp", ["-a", tree, tree2]);
      writeFileSync(join(tree2, "v2"), "v2\n");
      const uki2 = join(work, "v2.efi");
      const s2 = JSON.parse(particleOk(["seal", `dir:${tree2}`, "--keys", keys, "--initramfs", initrd, "--out", uki2, "--stub", STUB, "--version", "2", "--json"]));
      const r = JSON.parse(particleOk(["stage", `dir:${tree2}`, "--sysroot", sysroot, "--esp", esp, "--uki", uki2, "--json"]));
      const v1 = `particle-1-${sealed.imageDigest.slice(0, 12)}+3.efi`;
      const v2 = `particle-2-${s2.imageDigest.slice(0, 12)}`;
      expect(r.entry).toBe(`${v2}+3.efi`);
      const at = (...a: string[]) => JSON.parse(particleOk(["status", "--sysroot", sysroot, "--esp", esp, "--cmdline", "", "--json", ...a]));
      expect(at().spec.defaultDeployment).toBe(r.id);
      const rb = JSON.parse(particleOk(["rollback", "--sysroot", sysroot, "--esp", esp, "--cmdline", "", "--json"]));
      expect(rb).toMatchObject({ target: "1", from: r.id, why: "rollback", entry: v1 });
      expect(readdirSync(join(esp, "EFI/Linux")).sort()).toEqual([v1, `${v2}+0.efi`]);
      expect(at().spec.defaultDeployment).toBe("1");
      // Staging v2's UKI again makes it the default again, in place of the one with no tries left.
      particleOk(["stage", `dir:${tree2}`, "--sysroot", sysroot, "--esp", esp, "--uki", uki2]);
      expect(readdirSync(join(esp, "EFI/Linux")).sort()).toEqual([v1, `${v2}+3.efi`]);
    });
  });
});
