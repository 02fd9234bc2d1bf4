// A real registry for host tests: Debian's docker-registry (the CNCF distribution registry) on
// 127.0.0.1 at a free port, plain HTTP, with a containers config (under `home`) that says so.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

export interface TestRegistry {
  host: string;
  /** HOME for skopeo and particle: its .config/containers/registries.conf marks the registry insecure. */
  home: string;
  stop: () => void;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

export interface RegistryOptions {
  /** Run as a pull-through cache of this registry (distribution's proxy mode, `proxy: remoteurl:`). */
  proxyOf?: string;
  /** Drop its log: distribution logs every 404 (each blob a push checks) at level error. */
  quiet?: boolean;
}

export async function startRegistry(dir: string, opts: RegistryOptions = {}): Promise<TestRegistry> {
  const host = `127.0.0.1:${await freePort()}`;
  mkdirSync(dir, { recursive: true });
  const cfg = join(dir, "registry.yml");
  writeFileSync(cfg, ["version: 0.1", "log: {level: error}", `storage: {filesystem: {rootdirectory: ${join(dir, "data")}}}`, `http: {addr: "${host}"}`,
    ...(opts.proxyOf ? [`proxy: {remoteurl: "${opts.proxyOf}"}`] : []), ""].join("\n"));
  const proc: ChildProcess = spawn("docker-registry", ["serve", cfg], { stdio: ["ignore", "ignore", opts.quiet ? "ignore" : "inherit"] });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await fetch(`http://${host}/v2/`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      proc.kill("SIGTERM");
      throw new Error(`docker-registry did not answer on ${host}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const home = join(dir, "home");
  mkdirSync(join(home, ".config/containers"), { recursive: true });
  writeFileSync(join(home, ".config/containers/registries.conf"), `[[registry]]\nlocation = "${host}"\ninsecure = true\n`);
  return { host, home, stop: () => proc.kill("SIGTERM") };
}
