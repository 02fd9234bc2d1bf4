// Images from a registry on a booted guest (issue 10), shared inputs: the trixie tree with skopeo
// and a signature policy that requires the test signer's GPG key for the guest's registry; the
// tree as OCI image v1 and v1 plus a marker file as v2; a disk installed on the host from v1. The
// registry itself and the pushes are per run (test/qemu/registry.test.ts): its port is free only
// then. All else is cached under ~/.cache/particle-os, keyed by what it is built from.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { aptRepo, REPO_IP } from "./apt-repo.ts";
import { cached, fileHash, hashOf } from "./cache.ts";
import { PARTICLE } from "./cycle.ts";
import { guestTree, initramfs, sh, type GuestTree } from "./guest.ts";
import { markerLayouts, treeWithPackages } from "./layering.ts";
import { KERNEL_ARGS } from "./qemu.ts";

/** Bump when a recipe below changes. */
const REGISTRY_VERSION = "1";
const DISK_SIZE = "5G";
/** Where the guest finds the signatures (registries.d lookaside), forwarded like the registry. */
export const SIG_IP = "10.0.2.101";
/** The repository the machine follows, and one that nobody signs. The guest reaches the registry
 *  as http://REPO_IP (port 80); the host pushes to 127.0.0.1:PORT. */
export const REPO = "os/particle";
export const UNSIGNED_REPO = "os/unsigned";
export const TAG = "stable";
export const guestRef = (repo: string) => `${REPO_IP}/${repo}:${TAG}`;
export const V2_MARKER = "usr/share/particle-test/registry-v2";
export const V2_MARKER_TEXT = "image v2 from the registry\n";
const PUBKEY = "etc/pki/containers/particle-test.asc";

export interface Signer {
  /** GNUPGHOME holding the secret key. */
  home: string;
  fpr: string;
}

export interface RegistryGuestInputs {
  g: GuestTree;
  signer: Signer;
  /** OCI layouts <layouts>/v1/layout and <layouts>/v2/layout, tag `os`. */
  layouts: string;
  v1Digest: string;
  v2Digest: string;
  /** Pristine installed disk (v1, from the layout); copy before booting. */
  installed: string;
}

/** The test signer: made once and kept, so the tree that trusts its key stays cached. */
export function signer(): Promise<Signer> {
  return cached(`registry-gpg-${hashOf(REGISTRY_VERSION)}`, async (dir) => {
    mkdirSync(dir, { mode: 0o700 });
    sh("gpg", ["--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", "Particle-OS image signer <signer@particle.test>", "ed25519", "sign", "never"], { env: { GNUPGHOME: dir } });
    // The agent serves keys from the directory it started in, which cached() renames: stop it.
    sh("gpgconf", ["--kill", "gpg-agent"], { env: { GNUPGHOME: dir } });
  }).then((home) => {
    const fpr = sh("gpg", ["--list-keys", "--with-colons"], { env: { GNUPGHOME: home } }).split("\n").find((l) => l.startsWith("fpr:"))!.split(":")[9]!;
    return { home, fpr };
  });
}

/** What a machine that takes only signed images from REPO_IP has in /etc (containers-policy.json(5),
 *  containers-registries.d(5), containers-registries.conf(5)). */
export function trustSigner(tree: string, pub: string): void {
  const c = join(tree, "etc/containers");
  mkdirSync(join(c, "registries.d"), { recursive: true });
  mkdirSync(join(c, "registries.conf.d"), { recursive: true });
  mkdirSync(join(tree, PUBKEY, ".."), { recursive: true });
  writeFileSync(join(tree, PUBKEY), pub);
  writeFileSync(join(c, "policy.json"), JSON.stringify({
    default: [{ type: "reject" }],
    transports: { docker: { [REPO_IP]: [{ type: "signedBy", keyType: "GPGKeys", keyPath: `/${PUBKEY}` }] } },
  }, null, 2) + "\n");
  writeFileSync(join(c, "registries.d/particle-test.yaml"), `docker:\n  ${REPO_IP}:\n    lookaside: http://${SIG_IP}\n`);
  writeFileSync(join(c, "registries.conf.d/50-particle-test.conf"), `[[registry]]\nlocation = "${REPO_IP}"\ninsecure = true\n`);
}

export async function prepareRegistryGuest(log: (m: string) => void = () => {}): Promise<RegistryGuestInputs> {
  const g = await guestTree();
  const initrd = await initramfs(g);
  const s = await signer();
  const pub = sh("gpg", ["--export", "--armor", s.fpr], { env: { GNUPGHOME: s.home } });
  const repo = await aptRepo(g, ["skopeo"]);
  const tree = await treeWithPackages(g, repo, ["skopeo"], `tree-registry-${hashOf(REGISTRY_VERSION, g.key, repo, pub)}`, (t) => trustSigner(t, pub));
  const l = await markerLayouts(tree, `oci-registry-${hashOf(REGISTRY_VERSION, tree)}`, V2_MARKER, V2_MARKER_TEXT);
  const installed = await cached(`disk-registry-${hashOf(REGISTRY_VERSION, g.key, initrd, await fileHash(PARTICLE), DISK_SIZE, l.dir)}.img`, async (tmp) => {
    const args = ["install", "--to-disk", tmp, "--source", `oci:${join(l.dir, "v1/layout")}:os`, "--size", DISK_SIZE, "--initramfs", initrd];
    for (const a of KERNEL_ARGS.split(" ")) args.push("--karg", a);
    const t = Date.now();
    const r = spawnSync(PARTICLE, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`particle install failed (${r.status}):\n${r.stdout}${r.stderr}`);
    log(`particle install from the v1 layout: ${((Date.now() - t) / 1000).toFixed(0)} s`);
  });
  return { g, signer: s, layouts: l.dir, v1Digest: l.v1, v2Digest: l.v2, installed };
}

/** skopeo pushes layout `version` to `host/repo:TAG`, signed (simple signing, lookaside) for the
 *  name the guest pulls it by, unless `signer` is undefined. `home`: the registry's HOME. */
export function push(i: RegistryGuestInputs, version: "v1" | "v2", host: string, home: string, repo: string, signed: boolean): void {
  const sign = signed ? ["--sign-by", i.signer.fpr, "--sign-identity", guestRef(repo)] : [];
  sh("skopeo", ["--insecure-policy", "copy", "-q", ...sign, `oci:${join(i.layouts, version, "layout")}:os`, `docker://${host}/${repo}:${TAG}`],
    { env: { HOME: home, GNUPGHOME: i.signer.home } });
}
