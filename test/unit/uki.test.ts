import { createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { policyPcrDigest, predictPcr11 } from "../../runtime/src/seal/pcr11.ts";
import { addSections, peSections, readSection } from "../../runtime/src/uki/pe.ts";
import { pinError, pinnedImage, sealedCmdline, sealedOsRelease, ukiFileName } from "../../runtime/src/seal/plan.ts";
import { buildUki } from "../../runtime/src/seal/uki.ts";
import { parseCmdline } from "../../boot/src/cmdline.ts";
import { imageVersion } from "../../runtime/src/seal/stage-sealed.ts";

/** A minimal PE32+ image: one .text section, the layout systemd-stub has (headers in the first
 *  `headerSize` bytes, data after). */
function fakeStub(o: { sectionAlign?: number; headerSize?: number; signed?: boolean } = {}): Buffer {
  const sectionAlign = o.sectionAlign ?? 0x1000;
  const headerSize = o.headerSize ?? 0x400;
  const buf = Buffer.alloc(headerSize + 0x200);
  buf.write("MZ", 0, "latin1");
  buf.writeUInt32LE(0x40, 0x3c);
  buf.write("PE\0\0", 0x40, "latin1");
  const coff = 0x44;
  buf.writeUInt16LE(0x8664, coff);
  buf.writeUInt16LE(1, coff + 2);
  buf.writeUInt16LE(240, coff + 16);
  const opt = coff + 20;
  buf.writeUInt16LE(0x20b, opt);
  buf.writeUInt32LE(sectionAlign, opt + 32);
  buf.writeUInt32LE(0x200, opt + 36);
  buf.writeUInt32LE(sectionAlign * 2, opt + 56);
  buf.writeUInt32LE(headerSize, opt + 60);
  if (o.signed) buf.writeUInt32LE(0x100, opt + 112 + 32 + 4);
  const sec = opt + 240;
  buf.write(".text", sec, "latin1");
  buf.writeUInt32LE(0x123, sec + 8);
  buf.writeUInt32LE(sectionAlign, sec + 12);
  buf.writeUInt32LE(0x200, sec + 16);
  buf.writeUInt32LE(headerSize, sec + 20);
  buf.fill(0xcc, headerSize, headerSize + 0x123);
  return buf;
}

describe("PE sections (uki/pe.ts)", () => {
  it.each([0x1000, 0x200])("appends sections after the last one, aligned (section alignment %i)", (align) => {
    const stub = fakeStub({ sectionAlign: align });
    const data = [Buffer.from("ID=debian\n"), Buffer.alloc(0x1234, 7), Buffer.from("root=LABEL=x")];
    const out = addSections(stub, [{ name: ".osrel", data: data[0]! }, { name: ".linux", data: data[1]! }, { name: ".cmdline", data: data[2]! }]);
    const s = peSections(out);
    expect(s.map((x) => x.name)).toEqual([".text", ".osrel", ".linux", ".cmdline"]);
    for (let i = 1; i < s.length; i++) {
      expect(s[i]!.virtualAddress % align).toBe(0);
      expect(s[i]!.rawOffset % 0x200).toBe(0);
      expect(s[i]!.virtualAddress).toBeGreaterThanOrEqual(s[i - 1]!.virtualAddress + s[i - 1]!.virtualSize);
      expect(s[i]!.rawOffset).toBeGreaterThanOrEqual(s[i - 1]!.rawOffset + s[i - 1]!.rawSize);
    }
    expect(readSection(out, ".osrel")).toEqual(data[0]);
    expect(readSection(out, ".linux")).toEqual(data[1]);
    expect(readSection(out, ".cmdline")).toEqual(data[2]);
    // The stub's own code is untouched, and SizeOfImage covers the new sections.
    expect(readSection(out, ".text")).toEqual(Buffer.alloc(0x123, 0xcc));
    const last = s.at(-1)!;
    expect(out.readUInt32LE(0x44 + 20 + 56)).toBe(Math.ceil((last.virtualAddress + last.virtualSize) / align) * align);
  });

  it("refuses a signed stub, a duplicate section and a full header", () => {
    expect(() => addSections(fakeStub({ signed: true }), [{ name: ".linux", data: Buffer.alloc(1) }])).toThrow(/already signed/);
    expect(() => addSections(fakeStub(), [{ name: ".text", data: Buffer.alloc(1) }])).toThrow(/already has a \.text/);
    // Headers end right after the one section header: no room for another.
    const tight = fakeStub({ headerSize: 0x200 });
    const many = Array.from({ length: 8 }, (_, i) => ({ name: `.s${i}`, data: Buffer.alloc(1) }));
    expect(() => addSections(tight, many)).toThrow(/no room/);
  });

  it("names the input when it is not a PE image", () => {
    expect(() => peSections(Buffer.from("hello world, not a PE file at all, padding padding padding padding"), "x.efi")).toThrow(/x\.efi: not a PE image/);
  });

  it("builds a UKI whose .cmdline is the sealed command line", () => {
    const d = "ab".repeat(32);
    const uki = buildUki({ stub: fakeStub(), kernel: Buffer.alloc(100, 1), initrd: Buffer.alloc(50, 2), osRelease: "ID=debian\n", cmdline: sealedCmdline(d, ["console=ttyS0"]) });
    expect(peSections(uki).map((s) => s.name)).toEqual([".text", ".osrel", ".cmdline", ".initrd", ".linux"]);
    const cmdline = readSection(uki, ".cmdline")!.toString();
    expect(pinnedImage(cmdline)).toBe(d);
    expect(pinError(cmdline, d, "u")).toBeUndefined();
  });

  it("with a PCR 11 key, adds .pcrpkey and a .pcrsig signed for what the stub will measure", () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const parts = { stub: fakeStub(), kernel: Buffer.alloc(100, 1), initrd: Buffer.alloc(50, 2), osRelease: "ID=debian\n", cmdline: sealedCmdline("ab".repeat(32)), pcrPrivateKey: pem };
    const uki = buildUki(parts);
    expect(peSections(uki).map((s) => s.name)).toEqual([".text", ".osrel", ".cmdline", ".pcrpkey", ".pcrsig", ".initrd", ".linux"]);
    const pub = createPublicKey(pem);
    expect(readSection(uki, ".pcrpkey")!.toString()).toBe(pub.export({ type: "spki", format: "pem" }));
    // Read back from the PE image: what the stub would measure at boot.
    const measured = [".osrel", ".cmdline", ".pcrpkey", ".initrd", ".linux"].map((name) => ({ name, data: readSection(uki, name)! }));
    const pol = policyPcrDigest(predictPcr11(measured));
    const e = JSON.parse(readSection(uki, ".pcrsig")!.toString()).sha256[0];
    expect(e.pol).toBe(pol.toString("hex"));
    expect(verify("sha256", pol, pub, Buffer.from(e.sig, "base64"))).toBe(true);
    // Another command line is another PCR 11 value: the old signature does not cover it.
    const other = buildUki({ ...parts, cmdline: sealedCmdline("cd".repeat(32)) });
    expect(JSON.parse(readSection(other, ".pcrsig")!.toString()).sha256[0].pol).not.toBe(e.pol);
  });

  it("signs for the stub's own measured sections too (its .sbat)", () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const sbat = Buffer.from("sbat,1,SBAT Version,sbat,1,https://example.invalid\n");
    const stub = addSections(fakeStub(), [{ name: ".sbat", data: sbat }]);
    const parts = { stub, kernel: Buffer.alloc(10, 1), initrd: Buffer.alloc(10, 2), osRelease: "ID=debian\n", cmdline: "x", pcrPrivateKey: pem };
    const uki = buildUki(parts);
    const measured = [".sbat", ".osrel", ".cmdline", ".pcrpkey", ".initrd", ".linux"].map((name) => ({ name, data: readSection(uki, name)! }));
    const pol = JSON.parse(readSection(uki, ".pcrsig")!.toString()).sha256[0].pol;
    expect(pol).toBe(policyPcrDigest(predictPcr11(measured)).toString("hex"));
    expect(pol).not.toBe(policyPcrDigest(predictPcr11(measured.slice(1))).toString("hex"));
  });

  it("refuses a PCR 11 key that is not a PEM private key", () => {
    expect(() => buildUki({ stub: fakeStub(), kernel: Buffer.alloc(1), initrd: Buffer.alloc(1), osRelease: "", cmdline: "x", pcrPrivateKey: "not a key" }))
      .toThrow(/PCR 11 signing key: not a PEM private key/);
  });
});

describe("sealed UKI plan (seal/plan.ts)", () => {
  const d = "0123456789abcdef".repeat(4);
  it("pins the image by digest, with no deployment id, and particle-boot accepts it", () => {
    const c = sealedCmdline(d, ["console=ttyS0"]);
    expect(c).toBe(`root=LABEL=particle-root rw particle.image=${d} console=ttyS0`);
    const plan = parseCmdline(c);
    expect(plan.image).toBe(d);
    expect(plan.deploy).toBeUndefined();
  });

  it.each([
    [undefined, /not a UKI/],
    ["root=LABEL=x rw", /does not pin an image/],
    [`particle.image=${"f".repeat(64)}`, /pins image f+, not the staged image/],
  ])("pinError(%j)", (cmdline, err) => {
    expect(pinError(cmdline, d, "new.efi")).toMatch(err);
    expect(pinError(cmdline, d, "new.efi")).toMatch(/^new\.efi: /);
  });

  it("names the UKI with version, digest prefix and a +3 boot counter", () => {
    expect(ukiFileName("2", d)).toBe("particle-2-0123456789ab+3.efi");
    expect(ukiFileName("v 1/x", d, 0)).toBe("particle-v_1_x-0123456789ab.efi");
  });

  it("adds IMAGE_ID and IMAGE_VERSION to os-release", () => {
    expect(sealedOsRelease("ID=debian", "2")).toBe('ID=debian\nIMAGE_ID=particle\nIMAGE_VERSION="2"\n');
  });

  it.each([
    ['ID=debian\nIMAGE_ID=particle\nIMAGE_VERSION="2"\n', "2"],
    ["IMAGE_VERSION=1\nIMAGE_VERSION=3\n", "3"],
    ["ID=debian\n", undefined],
  ])("reads IMAGE_VERSION from .osrel %j", (osrel, v) => expect(imageVersion(osrel)).toBe(v));
});
