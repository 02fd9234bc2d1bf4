import { RootFormat } from "../manifest.ts";
import { UsageError } from "../cli.ts";
import { seal } from "../seal/seal.ts";

const list = (v: unknown): string[] => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String));

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  for (const o of ["keys", "initramfs", "out"]) if (!opts[o]) throw new UsageError(`--${o} is required`);
  const format = RootFormat.safeParse(opts.format);
  if (!format.success) throw new UsageError(`--format ${opts.format}: expected composefs, erofs or squashfs`);
  const r = await seal({
    source: args[0]!, keys: String(opts.keys), initramfs: String(opts.initramfs), out: String(opts.out), format: format.data,
    version: opts.version === undefined ? undefined : String(opts.version), kargs: list(opts.karg),
    stub: opts.stub === undefined ? undefined : String(opts.stub),
    log: (m) => process.stderr.write(`particle: ${m}\n`),
  });
  if (opts.json) process.stdout.write(JSON.stringify(r) + "\n");
  else process.stderr.write(`particle: sealed image ${r.imageDigest} into ${r.out} (${r.bytes} bytes, kernel ${r.kver})\n`);
}
