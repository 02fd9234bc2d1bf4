import { UsageError } from "../cli.ts";
import { parseEpoch, parseLabels } from "../image/oci-json.ts";
import { pack } from "../image/pack.ts";

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  const [action, tree, layout] = args as [string, string, string];
  if (action !== "pack" && action !== "chunk") throw new UsageError(`image ${action}: unknown action (expected pack or chunk)`);
  const maxLayers = action === "chunk" ? Number(opts.maxLayers) : undefined;
  if (maxLayers !== undefined && !Number.isInteger(maxLayers)) throw new UsageError(`--max-layers ${opts.maxLayers}: expected a whole number`);
  const epoch = parseEpoch(opts.epoch === undefined ? process.env.SOURCE_DATE_EPOCH : String(opts.epoch), opts.epoch === undefined ? "SOURCE_DATE_EPOCH" : "--epoch");
  const labels = parseLabels(opts.label === undefined ? [] : [opts.label].flat().map(String));
  const r = await pack({ tree, layout, tag: String(opts.tag), epoch, labels, maxLayers });
  if (opts.json) process.stdout.write(JSON.stringify({ layout, tag: String(opts.tag), ...r }) + "\n");
  else process.stdout.write(`${r.manifestDigest}\n`);
  process.stderr.write(`packed ${tree} (kernel ${r.kernel}) into ${layout}:${opts.tag}, ${r.layers.length} layer(s), ${r.layers.reduce((n, l) => n + l.size, 0)} bytes compressed\n`);
}
