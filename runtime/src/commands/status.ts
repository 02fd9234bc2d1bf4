import { readStatus } from "../deployments/read.ts";
import { renderStatus } from "../deployments/render-status.ts";
import { resolveWhere } from "../deployments/where.ts";

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const host = readStatus(resolveWhere(opts));
  process.stdout.write(opts.json ? JSON.stringify(host, null, 2) + "\n" : renderStatus(host));
}
