// Host tier for a fleet past one registry (docs/fleet.md): a second docker-registry in proxy mode
// (a pull-through cache) in front of the first, named as the image's mirror in registries.conf.
// Machines keep the upstream's reference; `particle switch` and `particle upgrade` fetch through the
// mirror, and the second machine's blobs come from the mirror's cache, not from upstream.
//
// Three counting proxies tell the paths apart: `direct` is the reference's registry as machines
// see it (nothing may go that way while the mirror works), `mirror` is in front of the cache,
// and `fill` sits between the cache and upstream (what upstream served to fill the cache).
// Needs root (particle stages into sysroots).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isBlobGet, startCountingProxy, type CountingProxy } from "./lib/counting-proxy.ts";
import { startRegistry, type TestRegistry } from "./lib/registry.ts";
import { Mounts, particle, particleAsync } from "./lib/particle.ts";
import { tarBytes } from "./lib/oci-tar.ts";
import { writeImage } from "./lib/oci-layout.ts";

const base = mkdtempSync("/var/tmp/particle-pull-through-");
const layout = join(base, "layout");
const home = join(base, "home");
const machines = { a: join(base, "a"), b: join(base, "b") };
const mnt = join(base, "mnt");
const mountsA = new Mounts(machines.a);
const mountsB = new Mounts(machines.b);
let upstream: TestRegistry, cache: TestRegistry;
let direct: CountingProxy, fill: CountingProxy, mirror: CountingProxy;
const execFileP = promisify(execFile);
const NO_VERIFY = "--insecure-no-verify-signatures";
const env = () => ({ HOME: home });
const ref = () => `docker://${direct.host}/os/fleet:latest`;

// v1 and v2 share the payload layer, so an update must fetch only the small release layer.
const payload = randomBytes(2 << 20);
const image = (v: string) => [
  { tar: tarBytes([{ path: "usr/", type: "dir", mode: 0o755 }, { path: "usr/payload", data: payload }]), compression: "gzip" as const },
  { tar: tarBytes([{ path: "etc/", type: "dir", mode: 0o755 }, { path: "etc/release", data: `${v}\n` }]), compression: "gzip" as const },
];

async function push(tag: string): Promise<void> {
  await execFileP("skopeo", ["--insecure-policy", "copy", "-q", `oci:${layout}:${tag}`, `docker://${upstream.host}/os/fleet:latest`], { env: { ...process.env, ...env() } });
}

const digestIn = (url: string) => /sha256:[0-9a-f]{64}/.exec(url)![0];
/** The distinct blobs (config and layers) a proxy's clients downloaded, sorted. */
const fetched = (p: CountingProxy) => [...new Set(p.served.filter(isBlobGet).map((s) => digestIn(s.url)))].sort();
/** The config and layer digests of a tag of the layout, sorted. */
function imageBlobs(tag: string): string[] {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const desc = index.manifests.find((m: any) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  const manifest = JSON.parse(readFileSync(join(layout, "blobs/sha256", desc.digest.slice(7)), "utf8"));
  return [manifest.config.digest, ...manifest.layers.map((l: { digest: string }) => l.digest)].sort();
}
const reset = () => { direct.reset(); mirror.reset(); fill.reset(); };

/**
 * distribution 2.8's proxy streams a missed blob from upstream to the client and, in the
 * background, fetches it again to store it: the next machine is served from the cache only once
 * that store is done. Waits for every blob the mirror served to be in the cache's storage.
 */
async function cacheFilled(): Promise<void> {
  const digests = fetched(mirror).map((d) => d.slice(7));
  const stored = (hex: string) => existsSync(join(base, "cache/data/docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data"));
  for (const deadline = Date.now() + 20_000; !digests.every(stored);) {
    if (Date.now() > deadline) throw new Error(`the pull-through cache did not store ${digests.filter((d) => !stored(d)).join(", ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function release(m: Mounts, sysroot: string, id: string): string {
  const at = join(mnt, `${sysroot.split("/").at(-1)}-${id}`);
  m.mount(id, at, sysroot);
  try {
    return readFileSync(join(at, "etc/release"), "utf8");
  } finally {
    m.unmount(at);
  }
}

beforeAll(async () => {
  upstream = await startRegistry(join(base, "upstream"));
  direct = await startCountingProxy(upstream.host);
  fill = await startCountingProxy(upstream.host);
  cache = await startRegistry(join(base, "cache"), { proxyOf: `http://${fill.host}` });
  mirror = await startCountingProxy(cache.host);
  mkdirSync(join(home, ".config/containers"), { recursive: true });
  // The machines' configuration: the image's registry, with the pull-through cache as its mirror
  // (tried first; the registry itself only if the mirror fails). Plain HTTP on 127.0.0.1 only.
  writeFileSync(join(home, ".config/containers/registries.conf"), [
    "[[registry]]", `location = "${direct.host}"`, "insecure = true",
    "[[registry.mirror]]", `location = "${mirror.host}"`, "insecure = true",
    "[[registry]]", `location = "${upstream.host}"`, "insecure = true", "",
  ].join("\n"));
  writeImage(layout, { tag: "v1", layers: image("v1") });
  writeImage(layout, { tag: "v2", layers: image("v2") });
  await push("v1");
}, 60_000);

afterAll(async () => {
  for (const m of [...mountsA.live.reverse(), ...mountsB.live.reverse()]) particle(["unmount", m]);
  await Promise.all([direct, fill, mirror].filter(Boolean).map((p) => p.stop()));
  cache?.stop();
  upstream?.stop();
  rmSync(base, { recursive: true, force: true });
});

describe("a pull-through cache as the registry's mirror", () => {
  beforeEach(reset);

  it("switch: the first machine fills the cache from upstream, the second is served from the cache", async () => {
    const v1 = imageBlobs("v1");
    const a = await particleAsync(["switch", ref(), "--sysroot", machines.a, "--json", NO_VERIFY], { env: env() });
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout.trim().split("\n").at(-1)!)).toMatchObject({ id: "1", source: ref() });
    expect(fetched(direct)).toEqual([]);
    expect(fetched(mirror)).toEqual(v1);
    expect(fetched(fill)).toEqual(v1);
    await cacheFilled();
    reset();

    const b = await particleAsync(["switch", ref(), "--sysroot", machines.b, "--json", NO_VERIFY], { env: env() });
    expect(b.code, b.stderr).toBe(0);
    expect(fetched(direct)).toEqual([]);
    expect(fetched(mirror)).toEqual(v1);
    expect(fetched(fill)).toEqual([]);
    expect(release(mountsB, machines.b, "1")).toBe("v1\n");
  }, 60_000);

  it("upgrade: v2 pushed upstream reaches both machines through the cache; upstream serves its new blobs once", async () => {
    await push("v2");
    // The payload layer is the same blob in v1 and v2: each machine has it already.
    const changed = imageBlobs("v2").filter((d) => !imageBlobs("v1").includes(d));
    expect(changed).toHaveLength(2);
    const a = await particleAsync(["upgrade", "--sysroot", machines.a, "--from", "1", "--json", NO_VERIFY], { env: env() });
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout.trim().split("\n").at(-1)!)).toMatchObject({ id: "2", source: ref() });
    expect(fetched(direct)).toEqual([]);
    expect(fetched(mirror)).toEqual(changed);
    expect(fetched(fill)).toEqual(changed);
    await cacheFilled();
    reset();

    const b = await particleAsync(["upgrade", "--sysroot", machines.b, "--from", "1", "--json", NO_VERIFY], { env: env() });
    expect(b.code, b.stderr).toBe(0);
    expect(fetched(direct)).toEqual([]);
    expect(fetched(mirror)).toEqual(changed);
    expect(fetched(fill)).toEqual([]);
    expect(release(mountsB, machines.b, "2")).toBe("v2\n");
    expect(release(mountsA, machines.a, "2")).toBe("v2\n");
  }, 60_000);
});
