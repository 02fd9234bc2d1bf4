// The system side of fetching images: skopeo copies an image into particle's OCI layout cache
// (checking signatures against the containers policy as it goes) and reports digests. Every
// failure names the image and what skopeo said. Where a registry's signatures live and whether it
// is reached without TLS is skopeo's own configuration (containers-registries.d(5),
// containers-registries.conf(5)), read from /etc/containers or $HOME/.config/containers.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import type { ImageRef } from "./transport.ts";
import { explainCopyFailure } from "./skopeo-errors.ts";

/** Which signature policy skopeo applies (containers-policy.json(5)). */
export type Policy = { kind: "system" } | { kind: "file"; path: string } | { kind: "insecure" };

export const SYSTEM_POLICY = "/etc/containers/policy.json";
const CONTAINERS_STORAGE = "/var/lib/containers/storage";

export function policyArgs(p: Policy): string[] {
  if (p.kind === "file") return ["--policy", p.path];
  if (p.kind === "insecure") return ["--insecure-policy"];
  return [];
}

export const describePolicy = (p: Policy): string =>
  p.kind === "file" ? p.path : p.kind === "system" ? SYSTEM_POLICY : "none (--insecure-no-verify-signatures)";

const tail = (s: string) => s.trim().split("\n").slice(-6).join("\n");

async function skopeo(args: string[], what: string): Promise<string> {
  try {
    const r = await execa("skopeo", args, { stripFinalNewline: true });
    return String(r.stdout);
  } catch (e: any) {
    if (e?.code === "ENOENT") throw new Error(`${what}: skopeo: command not found (install skopeo)`);
    const err = tail(String(e?.stderr ?? e?.message ?? e));
    throw new SkopeoError(`${what}: ${err}`, err);
  }
}

export class SkopeoError extends Error {
  constructor(message: string, readonly stderr: string) {
    super(message);
  }
}

/** The graph root a containers-storage reference names ("[driver@/graph+/run]name", containers-transports(5)), else the default one. */
export function storageRoot(ref: string): string {
  const m = /^containers-storage:\[(?:[^@\]]*@)?([^+\]]+)[^\]]*\]/.exec(ref);
  return m ? m[1]! : CONTAINERS_STORAGE;
}

function checkAvailable(img: ImageRef): void {
  const root = img.transport === "containers-storage" ? storageRoot(img.ref) : undefined;
  if (root && !existsSync(root)) {
    throw new Error(`image ${img.ref}: containers-storage is not present on this host (${root} does not exist; is podman or buildah installed?)`);
  }
}

function explain(img: ImageRef, policy: Policy, e: unknown): Error {
  if (!(e instanceof SkopeoError)) return e as Error;
  return new Error(explainCopyFailure(img.ref, img.transport, describePolicy(policy), e.stderr));
}

/** The digest of the image's top-level manifest as its source has it: what `upgrade` compares. */
export async function inspectDigest(img: ImageRef): Promise<string> {
  checkAvailable(img);
  const out = await skopeo(["inspect", "--no-tags", "--format", "{{.Digest}}", img.ref], `inspecting image ${img.ref}`);
  const d = out.trim();
  if (!/^sha256:[0-9a-f]{64}$/.test(d)) throw new Error(`inspecting image ${img.ref}: skopeo printed ${JSON.stringify(d)}, not a digest`);
  return d;
}

/**
 * Copies the image into the layout `cache` under `tag`. Blobs already in the layout are not
 * fetched again (skopeo checks the destination first); `onFetched` is told the bytes the layout has
 * gained so far, sampled while skopeo runs.
 */
export async function copyToLayout(img: ImageRef, cache: string, tag: string, policy: Policy, onFetched: (bytes: number) => void): Promise<void> {
  checkAvailable(img);
  const blobs = join(cache, "blobs", "sha256");
  const size = () => {
    if (!existsSync(blobs)) return 0;
    let n = 0;
    for (const f of readdirSync(blobs)) {
      try { n += statSync(join(blobs, f)).size; } catch { /* renamed under us */ }
    }
    return n;
  };
  // skopeo writes blobs under the layout; their growth is the fetch progress.
  let base = size();
  const timer = setInterval(() => onFetched(Math.max(0, size() - base)), 500);
  try {
    // The policy is enforced on the source while copying; the signatures themselves cannot be
    // stored in an OCI layout (skopeo refuses to write them there), and the cache needs none.
    await skopeo([...policyArgs(policy), "copy", "--quiet", "--remove-signatures", img.ref, `oci:${cache}:${tag}`], `image ${img.ref}`);
  } catch (e) {
    throw explain(img, policy, e);
  } finally {
    clearInterval(timer);
  }
  onFetched(Math.max(0, size() - base));
  base = 0;
}
