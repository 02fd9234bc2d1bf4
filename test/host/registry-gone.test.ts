// Host tier (issue 10 §2): a registry that goes away in the middle of a download. A counting proxy
// in front of a real docker-registry drops the connection part-way through the largest layer, once
// the other blobs are complete, and refuses everything after. The stage must fail naming the
// registry and the image, leave the store as it was, and the next attempt (registry back) must not
// download again the blobs the first one completed. Needs root (particle stages into a sysroot).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isBlobGet, startCountingProxy, type CountingProxy } from "./lib/counting-proxy.ts";
import { startRegistry, type TestRegistry } from "./lib/registry.ts";
import { particleAsync } from "./lib/particle.ts";
import { tarBytes } from "./lib/oci-tar.ts";
import { writeImage } from "./lib/oci-layout.ts";

const base = mkdtempSync("/var/tmp/particle-registry-gone-");
const layout = join(base, "layout");
const sysroot = join(base, "sysroot");
const policy = join(base, "policy.json");
let registry: TestRegistry;
let proxy: CountingProxy;
const env = () => ({ HOME: registry.home });
const ref = () => `docker://${proxy.host}/os/gone:v1`;
const digestIn = (url: string) => /sha256:[0-9a-f]{64}/.exec(url)![0];

// Random bytes do not compress: each layer's blob is about its payload's size.
const layer = (name: string, size: number) =>
  ({ tar: tarBytes([{ path: "usr/", type: "dir", mode: 0o755 }, { path: `usr/${name}`, data: randomBytes(size) }]), compression: "gzip" as const });
let big = "";
let config = "";
let others: string[] = [];
let imageBytes = 0;

/** Everything under the sysroot except the image cache, which is there to keep completed blobs. */
const storeListing = () => execFileSync("find", [sysroot, "-path", join(sysroot, "particle/cache"), "-prune", "-o", "-printf", "%y %m %s %P\\n"]).toString()
  .split("\n").filter((l) => !/particle\/(lock|cache)$/.test(l)).sort().join("\n");

beforeAll(async () => {
  registry = await startRegistry(join(base, "registry"), { quiet: true });
  proxy = await startCountingProxy(registry.host);
  writeFileSync(join(registry.home, ".config/containers/registries.conf"),
    `[[registry]]\nlocation = "${registry.host}"\ninsecure = true\n[[registry]]\nlocation = "${proxy.host}"\ninsecure = true\n`);
  writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  writeImage(layout, { tag: "v1", layers: [layer("a", 1 << 20), layer("b", 1 << 20), layer("big", 6 << 20)] });
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const manifest = JSON.parse(readFileSync(join(layout, "blobs/sha256", index.manifests[0].digest.slice(7)), "utf8"));
  big = manifest.layers[2].digest;
  config = manifest.config.digest;
  imageBytes = manifest.config.size + manifest.layers.reduce((n: number, l: { size: number }) => n + l.size, 0);
  others = [manifest.config.digest, manifest.layers[0].digest, manifest.layers[1].digest];
  execFileSync("skopeo", ["--insecure-policy", "copy", "-q", `oci:${layout}:v1`, `docker://${registry.host}/os/gone:v1`], { env: { ...process.env, ...env() } });
  // A store that already holds a deployment: the failed stage must leave it exactly so.
  mkdirSync(join(base, "tree/etc"), { recursive: true });
  writeFileSync(join(base, "tree/etc/release"), "0\n");
  const first = await particleAsync(["stage", `dir:${join(base, "tree")}`, "--sysroot", sysroot]);
  if (first.code !== 0) throw new Error(first.stderr);
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  registry?.stop();
  rmSync(base, { recursive: true, force: true });
});

describe("a registry that goes away mid-download", () => {
  const completed = () => new Set(proxy.served.filter((s) => isBlobGet(s) && s.status === 200).map((s) => digestIn(s.url)));
  let before = "";
  let firstCompleted = new Set<string>();

  it("fails naming the registry and the image, and leaves the store as it was", async () => {
    before = storeListing();
    proxy.reset();
    proxy.cutAfter((url) => url.includes(big), 1 << 20, () => others.every((d) => completed().has(d)));
    const r = await particleAsync(["stage", ref(), "--sysroot", sysroot, "--signature-policy", policy], { env: env() });
    expect(proxy.isGone()).toBe(true);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`image ${ref()}: the registry's connection ended in the middle of a download`);
    expect(r.stderr).toContain(proxy.host);
    expect(r.stderr).not.toContain("refused by the signature policy");
    expect(storeListing()).toBe(before);
    expect(readdirSync(join(sysroot, "particle/deploy"))).toEqual(["1"]);
    expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
    firstCompleted = completed();
    // The test means something only if some blobs did complete before the registry went away.
    expect([...firstCompleted].sort()).toEqual([...others].sort());
    expect(firstCompleted.has(big)).toBe(false);
  }, 120_000);

  it("the next attempt, with the registry back, fetches only what the first did not complete", async () => {
    proxy.restore();
    proxy.reset();
    const r = await particleAsync(["stage", ref(), "--sysroot", sysroot, "--signature-policy", policy, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split("\n").at(-1)!).id).toBe("2");
    const fetched = proxy.served.filter(isBlobGet).map((s) => digestIn(s.url));
    expect(fetched).toContain(big);
    // skopeo (containers/image) reads the image config from the source on every copy, whatever the
    // destination has: a few hundred bytes. Layers already in the cache are not fetched again.
    for (const d of firstCompleted) if (d !== config) expect(fetched).not.toContain(d);
    const configBytes = proxy.served.filter((s) => isBlobGet(s) && s.url.includes(config)).reduce((n, s) => n + s.bytes, 0);
    expect(configBytes).toBeLessThan(4096);
    const bigBytes = proxy.served.filter((s) => isBlobGet(s) && s.url.includes(big)).reduce((n, s) => n + s.bytes, 0);
    expect(proxy.blobBytes()).toBe(bigBytes + configBytes);
    console.log(`after the cut: ${proxy.blobBytes()} blob bytes fetched (the cut layer ${bigBytes}, the config ${configBytes}); the image's blobs: ${imageBytes}`);
  }, 120_000);
});
