import { UsageError } from "../cli.ts";
import { mountDeployment, VerityMode } from "../mounts/index.ts";
import { readDeployment } from "../store/deployments.ts";
import { storeLayout } from "../store/layout.ts";

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  const [id, target] = args as [string, string];
  let verity: VerityMode | undefined;
  if (opts.verity !== undefined) {
    const v = VerityMode.safeParse(opts.verity);
    if (!v.success) throw new UsageError(`--verity ${opts.verity}: expected require, optional or off`);
    verity = v.data;
  }
  const sysroot = String(opts.sysroot);
  const manifest = readDeployment(storeLayout(sysroot), id);
  const r = mountDeployment({ sysroot, manifest, target, verity });
  for (const w of r.warnings) process.stderr.write(`particle: warning: ${w}\n`);
  process.stderr.write(`mounted deployment ${r.id} (${r.format}, verity ${r.verity.mode}) read-only at ${target}\n`);
}
