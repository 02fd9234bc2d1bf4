import { RootFormat } from "../manifest.ts";
import { stage } from "../store/stage.ts";
import { UsageError } from "../cli.ts";

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  const format = RootFormat.safeParse(opts.format);
  if (!format.success) throw new UsageError(`--format ${opts.format}: expected composefs, erofs or squashfs`);
  const started = performance.now();
  const r = await stage({
    sysroot: String(opts.sysroot),
    source: args[0]!,
    format: format.data,
    version: opts.version === undefined ? undefined : String(opts.version),
    log: (m) => process.stderr.write(`particle: ${m}\n`),
  });
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ...r, seconds: Number(((performance.now() - started) / 1000).toFixed(3)) }) + "\n");
  } else {
    process.stderr.write(`staged deployment ${r.id} (${r.format}, image ${r.imageDigest.slice(0, 12)}…): ${r.objectsAdded} new objects, ${r.bytesAdded} bytes added\n`);
    process.stdout.write(`${r.id}\n`);
  }
}
