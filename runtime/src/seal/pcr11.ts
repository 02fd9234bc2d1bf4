// What PCR 11 will hold when a UKI's initramfs starts, and the TPM2 policy digest the owner signs
// for it (the UKI's .pcrsig). Pure: the same recipe systemd-stub follows at boot and
// systemd-measure follows at build time, so `particle seal` needs neither systemd-measure (its
// `sign` wants a TPM even to compute a digest on bookworm) nor a TPM on the build host.
import { nodeCrypto } from "../system/node-crypto.ts";
import type { KeyObject } from "node:crypto";

/** The stub's measuring order (systemd's unified_sections), not the file's order. .pcrsig is left
 *  out: it cannot hold a signature over itself. */
export const MEASURED_SECTIONS = [".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey"] as const;
/** What systemd-pcrphase extends in the initramfs before anything else can read PCR 11. */
export const ENTER_INITRD = ["enter-initrd"] as const;

const sha256 = (b: Buffer | string) => nodeCrypto().createHash("sha256").update(b).digest();
/** TPM2_PCR_Extend in the SHA-256 bank. */
export const extend = (pcr: Buffer, data: Buffer | string) => sha256(Buffer.concat([pcr, sha256(data)]));

export interface Section {
  name: string;
  data: Buffer;
}

/** PCR 11 after the stub has measured `sections` and systemd-pcrphase the `phases` words. */
export function predictPcr11(sections: readonly Section[], phases: readonly string[] = ENTER_INITRD): Buffer {
  for (const s of sections) {
    if (s.name !== ".pcrsig" && !(MEASURED_SECTIONS as readonly string[]).includes(s.name)) {
      throw new Error(`UKI section ${s.name}: not one systemd-stub measures; its PCR 11 value cannot be predicted`);
    }
  }
  let pcr = Buffer.alloc(32);
  for (const name of MEASURED_SECTIONS) {
    const s = sections.find((x) => x.name === name);
    if (!s) continue;
    // The name with its terminating NUL, then the contents.
    pcr = extend(pcr, Buffer.from(`${name}\0`, "latin1"));
    pcr = extend(pcr, s.data);
  }
  for (const p of phases) pcr = extend(pcr, p);
  return pcr;
}

const TPM2_CC_POLICY_PCR = 0x17f;
const TPM2_ALG_SHA256 = 0x0b;

/** TPML_PCR_SELECTION for one SHA-256 PCR, as the TPM marshals it. */
function pcrSelection(pcr: number): Buffer {
  const select = Buffer.alloc(3);
  if (!Number.isInteger(pcr) || pcr < 0 || pcr > 23) throw new Error(`PCR ${pcr}: a TPM 2.0 has PCRs 0 to 23`);
  select.writeUInt8(1 << (pcr & 7), pcr >> 3);
  const b = Buffer.alloc(4 + 2 + 1);
  b.writeUInt32BE(1, 0);
  b.writeUInt16BE(TPM2_ALG_SHA256, 4);
  b.writeUInt8(select.length, 6);
  return Buffer.concat([b, select]);
}

/** The PolicyPCR digest (from an empty policy) that binds PCR `pcr` to `value`. */
export function policyPcrDigest(value: Buffer, pcr = 11): Buffer {
  if (value.length !== 32) throw new Error(`PCR value: ${value.length} bytes, a SHA-256 PCR has 32`);
  const cc = Buffer.alloc(4);
  cc.writeUInt32BE(TPM2_CC_POLICY_PCR);
  return sha256(Buffer.concat([Buffer.alloc(32), cc, pcrSelection(pcr), sha256(value)]));
}

export interface PcrSignature {
  pcrs: number[];
  pkfp: string;
  pol: string;
  sig: string;
}

/** The .pcrsig JSON for one policy, in systemd-measure's layout. The TPM checks the signature in
 *  PolicyAuthorize over sha256(policy digest ‖ empty policyRef). */
export function pcrSignature(policy: Buffer, privateKeyPem: string, pcr = 11): { sha256: PcrSignature[] } {
  const pub: KeyObject = nodeCrypto().createPublicKey(privateKeyPem);
  if (pub.asymmetricKeyType !== "rsa") throw new Error(`PCR 11 signing key: ${pub.asymmetricKeyType} key; only RSA is supported (what systemd-measure makes by default)`);
  return {
    sha256: [{
      pcrs: [pcr],
      // systemd's fingerprint is OpenSSL's i2d_PublicKey: for RSA the PKCS#1 RSAPublicKey, not
      // the SubjectPublicKeyInfo; with any other, systemd finds no signature for the key.
      pkfp: sha256(pub.export({ type: "pkcs1", format: "der" })).toString("hex"),
      pol: policy.toString("hex"),
      sig: nodeCrypto().sign("sha256", policy, privateKeyPem).toString("base64"),
    }],
  };
}
