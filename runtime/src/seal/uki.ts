// A Unified Kernel Image: systemd-stub plus the kernel, the initramfs, os-release and the command
// line as PE sections (pe.ts), then signed with the owner's db key by sbsign. The stub measures
// and uses the embedded command line, and under Secure Boot ignores one passed by the loader: the
// signature covers every byte of the command line, and with it particle.image.
import { addSections } from "../uki/pe.ts";
import { run } from "../system/exec.ts";
import type { KeyDir } from "./keys.ts";

export interface UkiParts {
  stub: Buffer;
  kernel: Buffer;
  initrd: Buffer;
  osRelease: string;
  cmdline: string;
}

/** Pure: the unsigned UKI. Section order is ukify's. */
export function buildUki(p: UkiParts): Buffer {
  return addSections(p.stub, [
    { name: ".osrel", data: Buffer.from(p.osRelease) },
    { name: ".cmdline", data: Buffer.from(p.cmdline) },
    { name: ".initrd", data: p.initrd },
    // Last: the stub may let the kernel grow into the address space after .linux.
    { name: ".linux", data: p.kernel },
  ], "systemd-stub");
}

/** sbsign `input` to `output` with the db key (Authenticode, what the firmware's db check verifies). */
export async function signEfi(keys: KeyDir, input: string, output: string): Promise<void> {
  await run("sbsign", ["--key", keys.key, "--cert", keys.cert, "--output", output, input]);
}

