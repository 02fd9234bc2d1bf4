// Host tier for signed images from a registry: a real registry (the CNCF distribution registry,
// Debian's docker-registry) on 127.0.0.1, images pushed and GPG-signed ("simple signing") by skopeo,
// signatures in a lookaside directory, and the compiled particle checking them against a policy
// that requires one key. Needs root.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "./lib/registry.ts";
import { Mounts, particle } from "./lib/particle.ts";
import { tarBytes } from "./lib/oci-tar.ts";
import { writeImage } from "./lib/oci-layout.ts";

const base = mkdtempSync("/var/tmp/particle-registry-");
const layout = join(base, "layout");
const sysroot = join(base, "sysroot");
const mnt = join(base, "mnt");
const sigs = join(base, "sigs");
const policy = join(base, "policy.json");
// Where a user's containers configuration lives ($HOME/.config/containers): registries.conf says
// the test registry is plain HTTP, registries.d says where its signatures are. /etc is left alone.
const home = join(base, "home");
const keyA = join(base, "gpg-a");
const keyB = join(base, "gpg-b");
const mounts = new Mounts(sysroot);
let registry: ChildProcess | undefined;
let port = 0;
let host = "";
let fprA = "";
const env = () => ({ HOME: home });

const sh = (cmd: string, args: string[], e: Record<string, string> = {}) =>
  execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...e } }).toString();

/** A fresh GPG key in its own GNUPGHOME; returns its fingerprint. */
function gpgKey(dir: string, name: string): string {
  mkdirSync(dir, { mode: 0o700 });
  sh("gpg", ["--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", `${name} <${name}@particle.test>`, "ed25519", "sign", "never"], { GNUPGHOME: dir });
  const fpr = sh("gpg", ["--list-keys", "--with-colons"], { GNUPGHOME: dir }).split("\n").find((l) => l.startsWith("fpr:"))!;
  return fpr.split(":")[9]!;
}

/** skopeo pushes tag `tag` of the layout to the registry, signed by the key in `gpgHome` if given. */
function push(tag: string, repo: string, gpgHome?: string, fpr?: string): void {
  const sign = fpr ? ["--sign-by", fpr] : [];
  sh("skopeo", ["--insecure-policy", "copy", "-q", ...sign, `oci:${layout}:${tag}`, `docker://${host}/${repo}`], { ...env(), ...(gpgHome ? { GNUPGHOME: gpgHome } : {}) });
}

const digestOf = (repo: string) => sh("skopeo", ["inspect", "--no-tags", "--format", "{{.Digest}}", `docker://${host}/${repo}`], env()).trim();
const sigDir = (repo: string, digest: string) => join(sigs, `${repo.split(":")[0]}@${digest.replace(":", "=")}`);

/**
 * Every entry of the store with type, mode, size and (files) mtime: equal listings mean nothing was
 * added, removed or rewritten. Directory mtimes and the lock file's are left out: every command
 * takes the lock and works in tmp/, which moves them without changing what the store holds.
 */
// The upgrade-check record is meant to change on every upgrade, a refused one included (its own
// assertions say how); everything else must not.
const listing = () => sh("find", [sysroot, "-printf", "%y %m %s %T@ %P\\n"]).split("\n")
  .filter((l) => !l.endsWith(" particle/upgrade-check.json"))
  .map((l) => (/^d |particle\/lock$/.test(l) ? l.replace(/^(\S+ \S+ \S+) \S+/, "$1") : l)).sort().join("\n");

const release = (v: string) => tarBytes([{ path: "etc/", type: "dir", mode: 0o755 }, { path: "etc/release", data: `${v}\n` }]);

beforeAll(async () => {
  port = await freePort();
  host = `127.0.0.1:${port}`;
  const cfg = join(base, "registry.yml");
  writeFileSync(cfg, [
    "version: 0.1", "log: {level: error}",
    `storage: {filesystem: {rootdirectory: ${join(base, "registry")}}}`,
    `http: {addr: "${host}"}`, "",
  ].join("\n"));
  registry = spawn("docker-registry", ["serve", cfg], { stdio: ["ignore", "ignore", "inherit"] });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await fetch(`http://${host}/v2/`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${host}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const conf = join(home, ".config/containers");
  mkdirSync(join(conf, "registries.d"), { recursive: true });
  writeFileSync(join(conf, "registries.conf"), `[[registry]]\nlocation = "${host}"\ninsecure = true\n`);
  writeFileSync(join(conf, "registries.d/particle-test.yaml"), `docker:\n  ${host}:\n    lookaside: file://${sigs}\n    lookaside-staging: file://${sigs}\n`);

  fprA = gpgKey(keyA, "signer-a");
  const fprB = gpgKey(keyB, "signer-b");
  writeFileSync(join(base, "a.pub"), sh("gpg", ["--export", "--armor", fprA], { GNUPGHOME: keyA }));
  writeFileSync(policy, JSON.stringify({
    default: [{ type: "reject" }],
    transports: { docker: { [host]: [{ type: "signedBy", keyType: "GPGKeys", keyPath: join(base, "a.pub") }] } },
  }));

  writeImage(layout, { tag: "v1", layers: [{ tar: release("v1"), compression: "gzip" }] });
  writeImage(layout, { tag: "v2", layers: [{ tar: release("v2"), compression: "gzip" }] });
  writeImage(layout, { tag: "v3", layers: [{ tar: release("v3"), compression: "gzip" }] });
  push("v1", "os/signed:v1", keyA, fprA);
  push("v1", "os/unsigned:v1");
  push("v1", "os/other:v1", keyB, fprB);
  // Signed, then the tag is overwritten by another manifest and the old signature is put where the
  // new manifest's would be: what an attacker with write access to registry and lookaside can do.
  push("v1", "os/tampered:v1", keyA, fprA);
  const signedDigest = digestOf("os/tampered:v1");
  push("v2", "os/tampered:v1");
  const newDigest = digestOf("os/tampered:v1");
  cpSync(sigDir("os/tampered", signedDigest), sigDir("os/tampered", newDigest), { recursive: true });
}, 60_000);

afterAll(() => {
  for (const m of mounts.live.reverse()) particle(["unmount", m]);
  registry?.kill("SIGTERM");
  rmSync(base, { recursive: true, force: true });
});

describe("signed images from a registry", () => {
  it("a signed image stages (signature checked, not stored in the cache) and mounts", () => {
    const ref = `docker://${host}/os/signed:v1`;
    const res = particle(["stage", ref, "--sysroot", sysroot, "--json", "--signature-policy", policy], { env: env() });
    expect(res.code, res.stderr).toBe(0);
    const j = JSON.parse(res.stdout);
    expect(j).toMatchObject({ id: "1", source: ref });
    mounts.mount("1", join(mnt, "1"));
    expect(readFileSync(join(mnt, "1/etc/release"), "utf8")).toBe("v1\n");
    mounts.unmount(join(mnt, "1"));
    expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
  });

  it.each([
    ["an unsigned image", "os/unsigned:v1", "A signature was required, but no signature exists"],
    ["an image signed by another key", "os/other:v1", "Invalid GPG signature"],
    ["an image whose manifest changed after signing", "os/tampered:v1", /Signature for digest sha256:[0-9a-f]{64} does not match/],
  ])("%s is refused, naming the image and the reason; the store is unchanged", (_, repo, reason) => {
    const ref = `docker://${host}/${repo}`;
    const before = listing();
    const res = particle(["stage", ref, "--sysroot", sysroot, "--signature-policy", policy], { env: env() });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`image ${ref} refused by the signature policy ${policy}: `);
    expect(res.stderr).toMatch(reason);
    expect(listing()).toBe(before);
    expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
    expect(readdirSync(join(sysroot, "particle/deploy"))).toEqual(["1"]);
  });

  it("a registry that does not answer is a fetch failure, not a refusal", () => {
    const before = listing();
    const res = particle(["stage", `docker://127.0.0.1:1/os/signed:v1`, "--sysroot", sysroot, "--signature-policy", policy], { env: env() });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/image docker:\/\/127\.0\.0\.1:1\/os\/signed:v1: .*connection refused/);
    expect(res.stderr).not.toContain("refused by the signature policy");
    expect(listing()).toBe(before);
  });
});

describe("switch and upgrade against the registry", () => {
  // The port is known only once beforeAll has run.
  const tracked = () => `docker://${host}/os/tracked:v1`;
  const FROM = ["--from", "2"];

  it("switch stages a signed image and records its reference", () => {
    push("v1", "os/tracked:v1", keyA, fprA);
    const res = particle(["switch", tracked(), "--sysroot", sysroot, "--json", "--signature-policy", policy], { env: env() });
    expect(res.code, res.stderr).toBe(0);
    const j = JSON.parse(res.stdout.trim().split("\n").at(-1)!);
    expect(j).toMatchObject({ id: "2", source: tracked() });
    const m = JSON.parse(readFileSync(join(sysroot, "particle/deploy/2/deployment.json"), "utf8"));
    expect(m.oci).toMatchObject({ reference: tracked(), sourceDigest: digestOf("os/tracked:v1") });
  });

  it("upgrade stages the tag's new signed image; an unsigned one pushed over it is refused, store unchanged", () => {
    const none = particle(["upgrade", "--check", "--sysroot", sysroot, "--signature-policy", policy, ...FROM], { env: env() });
    expect(none.code, none.stderr).toBe(0);
    expect(none.stderr).toContain(`no update: ${tracked()} is still`);

    push("v2", "os/tracked:v1", keyA, fprA);
    const up = particle(["upgrade", "--sysroot", sysroot, "--json", "--signature-policy", policy, ...FROM], { env: env() });
    expect(up.code, up.stderr).toBe(0);
    const j = JSON.parse(up.stdout.trim().split("\n").at(-1)!);
    expect(j.oci.sourceDigest).toBe(digestOf("os/tracked:v1"));
    mounts.mount(j.id, join(mnt, j.id));
    expect(readFileSync(join(mnt, j.id, "etc/release"), "utf8")).toBe("v2\n");
    mounts.unmount(join(mnt, j.id));

    push("v3", "os/tracked:v1");
    const before = listing();
    const bad = particle(["upgrade", "--sysroot", sysroot, "--signature-policy", policy, "--from", j.id], { env: env() });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`image ${tracked()} refused by the signature policy ${policy}: A signature was required, but no signature exists`);
    expect(listing()).toBe(before);
    const rec = JSON.parse(readFileSync(join(sysroot, "particle/upgrade-check.json"), "utf8"));
    expect(rec).toMatchObject({ result: "failed", reference: tracked() });
    expect(rec.error).toContain("refused by the signature policy");
  });
});
