// Sealing a deployment's tree: the UKI built from the tree's own kernel and systemd-stub, with the
// given initramfs, signed with the owner's db key. Used by `particle seal` (the image build) and
// `particle install --sealed`; both hand it a mounted or unpacked tree.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic } from "../system/atomic.ts";
import { pickKernel } from "../install/initramfs.ts";
import { buildUki, signEfi } from "./uki.ts";
import type { KeyDir } from "./keys.ts";
import { sealedCmdline, sealedOsRelease } from "./plan.ts";

export const STUB_IN_TREE = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const OS_RELEASE = ["etc/os-release", "usr/lib/os-release"];

export interface SealInput {
  tree: string;
  imageDigest: string;
  initrd: string;
  keys: KeyDir;
  version: string;
  kargs?: readonly string[];
  /** systemd-stub to use instead of the tree's (systemd-boot-efi). */
  stub?: string;
  kernel?: string;
  out: string;
}

export interface SealResult {
  out: string;
  cmdline: string;
  bytes: number;
  kver: string;
}

export async function sealTree(i: SealInput): Promise<SealResult> {
  const stub = i.stub ?? join(i.tree, STUB_IN_TREE);
  if (!existsSync(stub)) throw new Error(`systemd-stub not found at ${stub} (install systemd-boot-efi in the image, or pass --stub)`);
  const k = pickKernel(i.tree, i.kernel);
  const osr = OS_RELEASE.map((p) => join(i.tree, p)).find((p) => existsSync(p));
  const cmdline = sealedCmdline(i.imageDigest, i.kargs);
  const uki = buildUki({
    stub: readFileSync(stub),
    kernel: readFileSync(k.path),
    initrd: readFileSync(i.initrd),
    osRelease: sealedOsRelease(osr ? readFileSync(osr, "utf8") : "", i.version),
    cmdline,
    // With the owner's PCR 11 key the UKI can unlock a /var enrolled for it (.pcrpkey, .pcrsig).
    ...(i.keys.pcrKey ? { pcrPrivateKey: readFileSync(i.keys.pcrKey, "utf8") } : {}),
  });
  const work = mkdtempSync(join(tmpdir(), "particle-seal-"));
  try {
    const unsigned = join(work, "unsigned.efi");
    const signed = join(work, "signed.efi");
    writeFileAtomic(unsigned, uki);
    await signEfi(i.keys, unsigned, signed);
    writeFileAtomic(i.out, readFileSync(signed));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { out: i.out, cmdline, bytes: statSync(i.out).size, kver: k.kver };
}
