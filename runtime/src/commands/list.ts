import { listDeployments } from "../store/deployments.ts";
import { storeLayout } from "../store/layout.ts";

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const ds = listDeployments(storeLayout(String(opts.sysroot)));
  if (opts.json) {
    process.stdout.write(JSON.stringify(ds) + "\n");
    return;
  }
  for (const d of ds) process.stdout.write(`${d.id}\t${d.format}\t${d.imageDigest}\t${d.version ?? "-"}\t${d.created}\t${d.source}\n`);
}
