import { FormatRequest } from "../kernel/format-choice.ts";
import { UsageError } from "../cli.ts";
import { install } from "../install/install.ts";
import { parseSize } from "../install/disk.ts";
import { policyFromOptions } from "../oci/policy.ts";

const list = (v: unknown): string[] => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String));

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  if (!opts.toDisk) throw new UsageError("--to-disk <image-file|block-device> is required");
  if (!opts.source) throw new UsageError("--source <source> is required (dir:PATH, tar:PATH, a directory, or an image such as docker://NAME or oci:PATH)");
  if (opts.bootloader !== "systemd-boot" && opts.bootloader !== "grub") throw new UsageError(`--bootloader ${opts.bootloader}: only systemd-boot and grub are supported`);
  const format = FormatRequest.safeParse(opts.format);
  if (!format.success) throw new UsageError(`--format ${opts.format}: expected auto, composefs, erofs or squashfs`);
  const r = await install({
    target: String(opts.toDisk),
    source: String(opts.source),
    size: opts.size === undefined ? undefined : parseSize(String(opts.size)),
    format: format.data,
    version: opts.version === undefined ? undefined : String(opts.version),
    initramfs: opts.initramfs === undefined ? undefined : String(opts.initramfs),
    kargs: list(opts.karg),
    bootloader: opts.bootloader,
    sealed: opts.sealed === undefined ? undefined : String(opts.sealed),
    luksVar: opts.luksVar === undefined ? undefined : parseSize(String(opts.luksVar)),
    policy: policyFromOptions(opts),
    targetImgref: opts.targetImgref === undefined ? undefined : String(opts.targetImgref),
    progressOut: process.stderr,
    log: (m) => process.stderr.write(`particle: ${m}\n`),
  });
  if (opts.json) process.stdout.write(JSON.stringify(r) + "\n");
  else process.stderr.write(`particle: installed deployment ${r.deployment} (kernel ${r.kernel}) to ${r.target}; entry ${r.entry}\n`);
}
