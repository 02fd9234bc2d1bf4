// The registry of the delivery and fleet sections: Debian's docker-registry on 127.0.0.1
// (test/host/lib/registry.ts) with the workload's images pushed by skopeo, and a counting proxy in
// front of it that the machines pull through, so the bytes the registry served are counted on the wire.
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { startCountingProxy, type CountingProxy } from "../host/lib/counting-proxy.ts";
import { startRegistry, type TestRegistry } from "../host/lib/registry.ts";
import { sh } from "./lib.ts";

export interface BenchRegistry {
  registry: TestRegistry;
  proxy: CountingProxy;
  /** Environment for skopeo and particle (HOME with a registries.conf marking both hosts plain HTTP). */
  env: Record<string, string>;
  /** skopeo pushes tag `tag` of `layout` as `bench/<name>:<as>` (straight to the registry, not counted). */
  push: (layout: string, tag: string, name: string, as: string) => Promise<void>;
  /** The reference machines use: through the proxy. */
  ref: (name: string, tag: string) => string;
  stop: () => Promise<void>;
}

export async function startBenchRegistry(dir: string): Promise<BenchRegistry> {
  const registry = await startRegistry(dir, { quiet: true });
  const proxy = await startCountingProxy(registry.host);
  appendFileSync(join(registry.home, ".config/containers/registries.conf"), `[[registry]]\nlocation = "${proxy.host}"\ninsecure = true\n`);
  const env = { HOME: registry.home };
  return {
    registry, proxy, env,
    push: async (layout, tag, name, as) => {
      await sh(["env", `HOME=${registry.home}`, "skopeo", "--insecure-policy", "copy", "-q", `oci:${layout}:${tag}`, `docker://${registry.host}/bench/${name}:${as}`]);
    },
    ref: (name, tag) => `docker://${proxy.host}/bench/${name}:${tag}`,
    stop: async () => { await proxy.stop(); registry.stop(); },
  };
}
