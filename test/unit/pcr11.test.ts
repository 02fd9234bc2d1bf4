import { createHash, createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ENTER_INITRD, extend, MEASURED_SECTIONS, pcrSignature, policyPcrDigest, predictPcr11, type Section } from "../../runtime/src/seal/pcr11.ts";

const sec = (name: string, data: string): Section => ({ name, data: Buffer.from(data, "latin1") });
const small = [sec(".linux", "KERNEL"), sec(".osrel", "ID=x\n"), sec(".cmdline", "root=x"), sec(".initrd", "INITRD")];

describe("predictPcr11", () => {
  // Reference values printed by trixie's `systemd-measure calculate --bank=sha256 --phase=…` (systemd
  // 257.13, run in a chroot of the guest tree) for files with exactly these contents.
  it("matches systemd-measure for the same section contents", () => {
    expect(predictPcr11(small).toString("hex")).toBe("37ec73c546ca3e606cde8f78f46e81c343524c5018769527ac237ed5a3415fc1");
    expect(predictPcr11([...small, sec(".pcrpkey", "PUBKEY\n"), sec(".sbat", "SBAT")]).toString("hex"))
      .toBe("5edaa0f8c7d783e95a2bb8c5f519f26d1957966cd39caf0a56e4f83bc5a6092d");
    expect(predictPcr11([sec(".linux", "KERNEL")], ["enter-initrd", "leave-initrd"]).toString("hex"))
      .toBe("a7fb8d439c44d3916cf7e10c7601463dc48666e1f6f4ea3c17d2e2918879323f");
  });

  it("follows the stub's order, not the file's, and skips .pcrsig", () => {
    const reversed = [...small].reverse();
    expect(predictPcr11(reversed).equals(predictPcr11(small))).toBe(true);
    expect(predictPcr11([...small, sec(".pcrsig", "{}")]).equals(predictPcr11(small))).toBe(true);
  });

  it("is the extend chain of each name with its NUL, its data, then the phases", () => {
    let pcr = Buffer.alloc(32);
    for (const name of MEASURED_SECTIONS) {
      const s = small.find((x) => x.name === name);
      if (!s) continue;
      pcr = extend(extend(pcr, `${name}\0`), s.data);
    }
    for (const p of ENTER_INITRD) pcr = extend(pcr, p);
    expect(predictPcr11(small).equals(pcr)).toBe(true);
  });

  it("changes with any measured byte and with the phase", () => {
    const base = predictPcr11(small).toString("hex");
    expect(predictPcr11([...small.slice(0, 2), sec(".cmdline", "root=y"), small[3]!]).toString("hex")).not.toBe(base);
    expect(predictPcr11(small, ["enter-initrd", "leave-initrd"]).toString("hex")).not.toBe(base);
  });

  it("refuses a section the stub does not measure", () => {
    expect(() => predictPcr11([...small, sec(".text", "x")])).toThrow(/\.text: not one systemd-stub measures/);
  });
});

describe("policyPcrDigest", () => {
  it("is PolicyPCR from the empty policy over {sha256: [11]}", () => {
    const value = predictPcr11(small);
    const h = (b: Buffer) => createHash("sha256").update(b).digest();
    // TPM2_CC_PolicyPCR, TPML_PCR_SELECTION {count 1, TPM_ALG_SHA256, sizeofSelect 3, PCR 11 = bit 3 of byte 1}, H(PCR values).
    const expected = h(Buffer.concat([Buffer.alloc(32), Buffer.from("0000017f" + "00000001" + "000b" + "03" + "000800", "hex"), h(value)]));
    expect(policyPcrDigest(value).equals(expected)).toBe(true);
    expect(policyPcrDigest(value, 7).equals(expected)).toBe(false);
  });

  it("refuses a value that is not a SHA-256 PCR, and a PCR a TPM does not have", () => {
    expect(() => policyPcrDigest(Buffer.alloc(20))).toThrow(/20 bytes/);
    expect(() => policyPcrDigest(Buffer.alloc(32), 24)).toThrow(/PCR 24/);
  });
});

describe("pcrSignature", () => {
  it("refuses a key systemd would not match (not RSA)", () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    expect(() => pcrSignature(Buffer.alloc(32), privateKey.export({ type: "pkcs8", format: "pem" }) as string)).toThrow(/ec key; only RSA/);
  });

  it("signs the policy so that the public key in .pcrpkey verifies it, in systemd-measure's layout", () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const pol = policyPcrDigest(predictPcr11(small));
    const j = pcrSignature(pol, pem);
    expect(Object.keys(j)).toEqual(["sha256"]);
    const [e] = j.sha256;
    expect(e!.pcrs).toEqual([11]);
    expect(e!.pol).toBe(pol.toString("hex"));
    const pub = createPublicKey(pem);
    // PKCS#1 (OpenSSL's i2d_PublicKey), what systemd's tpm2 code compares against.
    expect(e!.pkfp).toBe(createHash("sha256").update(pub.export({ type: "pkcs1", format: "der" })).digest("hex"));
    expect(verify("sha256", pol, pub, Buffer.from(e!.sig, "base64"))).toBe(true);
    expect(verify("sha256", policyPcrDigest(predictPcr11(small.slice(1))), pub, Buffer.from(e!.sig, "base64"))).toBe(false);
  });
});
