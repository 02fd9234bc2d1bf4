// A Unified Kernel Image: systemd-stub plus the kernel, the initramfs, os-release and the command
// line as PE sections (pe.ts), then signed with the owner's db key by sbsign. The stub measures
// and uses the embedded command line, and under Secure Boot ignores one passed by the loader: the
// signature covers every byte of the command line, and with it particle.image.
import { nodeCrypto } from "../system/node-crypto.ts";
import { addSections, peSections, readSection } from "../uki/pe.ts";
import { run } from "../system/exec.ts";
import type { KeyDir } from "./keys.ts";
import { MEASURED_SECTIONS, pcrSignature, policyPcrDigest, predictPcr11, type Section } from "./pcr11.ts";

export interface UkiParts {
  stub: Buffer;
  kernel: Buffer;
  initrd: Buffer;
  osRelease: string;
  cmdline: string;
  /** The owner's PCR 11 signing key (PEM, private): the UKI then carries .pcrpkey and .pcrsig, and
   *  a /var enrolled for that key unlocks under it (docs/sealed-boot.md, /var on LUKS). */
  pcrPrivateKey?: string;
}

/** Pure: the UKI's sections in file order (ukify's). .pcrsig is planned over the others: the stub
 *  measures all but it, .pcrpkey included, so the signature covers the key that checks it. */
export function ukiSections(p: UkiParts): Section[] {
  const pcrpkey: Section[] = p.pcrPrivateKey === undefined ? [] : [{ name: ".pcrpkey", data: publicPem(p.pcrPrivateKey) }];
  const measured: Section[] = [
    { name: ".osrel", data: Buffer.from(p.osRelease) },
    { name: ".cmdline", data: Buffer.from(p.cmdline) },
    ...pcrpkey,
    { name: ".initrd", data: p.initrd },
    // Last: the stub may let the kernel grow into the address space after .linux.
    { name: ".linux", data: p.kernel },
  ];
  if (p.pcrPrivateKey === undefined) return measured;
  const policy = policyPcrDigest(predictPcr11([...stubMeasured(p.stub), ...measured]));
  const pcrsig = { name: ".pcrsig", data: Buffer.from(JSON.stringify(pcrSignature(policy, p.pcrPrivateKey))) };
  const at = measured.findIndex((s) => s.name === ".initrd");
  return [...measured.slice(0, at), pcrsig, ...measured.slice(at)];
}

/** Sections the stub already has that it measures too: its own .sbat (found by the host seal test:
 *  a PCR 11 value over the added sections alone would match no real boot). */
function stubMeasured(stub: Buffer): Section[] {
  return peSections(stub, "systemd-stub")
    .filter((s) => (MEASURED_SECTIONS as readonly string[]).includes(s.name))
    .map((s) => ({ name: s.name, data: readSection(stub, s.name, "systemd-stub")! }));
}

function publicPem(privateKeyPem: string): Buffer {
  try {
    return Buffer.from(nodeCrypto().createPublicKey(privateKeyPem).export({ type: "spki", format: "pem" }) as string);
  } catch (e) {
    throw new Error(`PCR 11 signing key: not a PEM private key (${(e as Error).message})`);
  }
}

/** Pure: the unsigned UKI. */
export function buildUki(p: UkiParts): Buffer {
  return addSections(p.stub, ukiSections(p), "systemd-stub");
}

/** sbsign `input` to `output` with the db key (Authenticode, what the firmware's db check verifies). */
export async function signEfi(keys: KeyDir, input: string, output: string): Promise<void> {
  await run("sbsign", ["--key", keys.key, "--cert", keys.cert, "--output", output, input]);
}

