// `make demo`: the README's main job, the way users receive an OS. On real (emulated) hardware:
//   1. `make image` builds the Particle-OS base image (Debian trixie standing in for Ubuntu, with a
//      kernel, systemd, dracut, skopeo and Particle-OS), and buildah derives the demo's image from
//      it with a Containerfile (test/demo/Containerfile, like examples/Containerfile);
//   2. both are pushed, GPG-signed, to a real registry (Debian's docker-registry on 127.0.0.1);
//   3. `particle install` installs the machine from that registry, checking the signature;
//   4. the machine, booted in QEMU (OVMF, systemd-boot), runs `particle upgrade` against the
//      registry (reached through one guestfwd rule, nothing else) after version 2 is pushed,
//      and reboots into it;
//   5. `particle rollback`, and a boot back on version 1.
// Each boot's steps run in the guest through the demo agent, which the derived image carries. The
// disk image stays behind for `make run`.
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { baseImage, REPO } from "./qemu/lib/base-image.ts";
import { guestNetArgs, GUEST_NET, REPO_IP, serveRepo } from "./qemu/lib/apt-repo.ts";
import { humanOutput, parse, PRELUDE, timing } from "./qemu/lib/cycle.ts";
import { runDisk } from "./qemu/lib/ovmf.ts";
import { KERNEL_ARGS } from "./qemu/lib/qemu.ts";
import { signer, SIG_IP, trustSigner } from "./qemu/lib/registry-guest.ts";
import { startRegistry } from "./host/lib/registry.ts";

const say = (s: string) => console.log(`\n==> ${s}`);
const t0 = Date.now();
const since = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
const sh = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  execFileSync(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 26 }).toString();
const out = process.env.PARTICLE_DEMO_DIR || join(process.env.PARTICLE_CACHE || join(homedir(), ".cache/particle-os"), "demo");
mkdirSync(out, { recursive: true });
const PARTICLE = join(REPO, "dist/particle");
const OS_REPO = "os/particle";
const BASE_REPO = "os/particle-base";
const TAG = "stable";
const VERSION_FILE = "usr/share/particle-demo/version";

const work = mkdtempSync("/var/tmp/particle-demo-");
// buildah names an oci: base after its path, which must be a valid lowercase image name: no dot-directory (~/.cache).
const baseLink = `/var/tmp/particle-demo-${process.pid}-base`;
const storageRoot = join(work, "storage");
const storage = ["--root", storageRoot, "--runroot", join(work, "run"), "--storage-driver", "overlay"];
const local = (name: string) => `containers-storage:[overlay@${storageRoot}+${join(work, "run")}]${name}`;
const cleanups: (() => void)[] = [];
const cleanup = () => {
  for (const f of cleanups.splice(0).reverse()) {
    try {
      f();
    } catch { /* best effort */ }
  }
};
process.on("exit", cleanup);

say("1. the base image: `make image` (Debian trixie + Particle-OS as an OCI layout; the Debian rootfs is cached per day, the image by its inputs)");
const base = await baseImage();
symlinkSync(base, baseLink);
cleanups.push(() => rmSync(baseLink, { force: true }));
console.log(`base image: ${base} (${JSON.parse(sh("skopeo", ["inspect", "--raw", `oci:${base}:latest`])).layers.length} layers)  [${since()}]`);

say("   the demo's image, derived with buildah from test/demo/Containerfile (RUN apt-get install tree, the demo agent, trust in the demo signer's key)");
const s = await signer();
const pub = sh("gpg", ["--export", "--armor", s.fpr], { GNUPGHOME: s.home });
const context = join(work, "context");
mkdirSync(join(context, "rootfs/usr/local/sbin"), { recursive: true });
mkdirSync(join(context, "rootfs/etc/systemd/system"), { recursive: true });
for (const f of ["Containerfile", "Containerfile.update"]) copyFileSync(join(REPO, "test/demo", f), join(context, f));
for (const f of readdirSync(join(REPO, "test/guest/agent"))) {
  cpSync(join(REPO, "test/guest/agent", f), join(context, "rootfs", f.endsWith(".service") ? "etc/systemd/system" : "usr/local/sbin", f));
}
trustSigner(join(context, "rootfs"), pub);
cleanups.push(() => {
  execFileSync("buildah", [...storage, "rm", "--all"], { stdio: "ignore" });
  execFileSync("umount", ["-R", join(storageRoot, "overlay")], { stdio: "ignore" });
});
const bud = (file: string, baseRef: string, tag: string) => {
  const t = Date.now();
  sh("buildah", [...storage, "bud", "--isolation", "chroot", "-q", "--build-arg", `BASE=${baseRef}`, "-f", join(context, file), "-t", tag, context]);
  console.log(`buildah bud -f ${file} → ${tag}: ${((Date.now() - t) / 1000).toFixed(0)} s`);
};
bud("Containerfile", `oci:${baseLink}:latest`, "localhost/particle-demo:1");
bud("Containerfile.update", "localhost/particle-demo:1", "localhost/particle-demo:2");
console.log(`[${since()}]`);

say("2. a registry on 127.0.0.1 (docker-registry); skopeo pushes the base and version 1, signed with the demo's GPG key");
const registry = await startRegistry(join(work, "registry"), { quiet: true });
cleanups.push(() => registry.stop());
const sigDir = join(work, "sigs");
mkdirSync(sigDir);
// Signatures live beside the registry (containers-registries.d(5) lookaside): written here by the
// pushes, read back by the installer, and served to the machine over HTTP.
mkdirSync(join(registry.home, ".config/containers/registries.d"), { recursive: true });
writeFileSync(join(registry.home, ".config/containers/registries.d/particle-demo.yaml"), `docker:\n  ${registry.host}:\n    lookaside: file://${sigDir}\n`);
const sigs = await serveRepo(sigDir);
cleanups.push(() => sigs.server.close());
// Signed for the name the machine pulls by (the registry as it sees it, 10.0.2.100), as a registry
// behind a proxy or a mirror is signed for its public name.
const push = (src: string, repo: string) => {
  const t = Date.now();
  sh("skopeo", ["--insecure-policy", "copy", "-q", "--sign-by", s.fpr, "--sign-identity", `${REPO_IP}/${repo}:${TAG}`, src, `docker://${registry.host}/${repo}:${TAG}`],
    { HOME: registry.home, GNUPGHOME: s.home });
  console.log(`pushed ${repo}:${TAG} (signed): ${((Date.now() - t) / 1000).toFixed(0)} s`);
};
push(`oci:${base}:latest`, BASE_REPO);
push(local("localhost/particle-demo:1"), OS_REPO);

say("3. `particle install` from the registry: the signature is checked against a policy that requires the demo key; the machine will follow 10.0.2.100, the registry's name from inside it");
const pubFile = join(work, "demo-signer.asc");
writeFileSync(pubFile, pub);
const policy = join(work, "policy.json");
writeFileSync(policy, JSON.stringify({
  default: [{ type: "reject" }],
  transports: { docker: { [`${registry.host}/os`]: [{ type: "signedBy", keyType: "GPGKeys", keyPath: pubFile,
    signedIdentity: { type: "remapIdentity", prefix: `${registry.host}/os`, signedPrefix: `${REPO_IP}/os` } }] } },
}, null, 2));
const disk = join(out, "disk.img");
rmSync(disk, { force: true });
rmSync(`${disk}.vars.fd`, { force: true });
const installArgs = ["install", "--to-disk", disk, "--size", "8G", "--source", `docker://${registry.host}/${OS_REPO}:${TAG}`,
  "--target-imgref", `docker://${REPO_IP}/${OS_REPO}:${TAG}`, "--signature-policy", policy, ...KERNEL_ARGS.split(" ").flatMap((a) => ["--karg", a])];
console.log(`particle ${installArgs.join(" ")}`);
sh(PARTICLE, installArgs, { HOME: registry.home });
console.log(`disk image: ${disk} (GPT: ESP with systemd-boot + ext4 root holding version 1)  [${since()}]`);

say("   version 2 is pushed (version 1 plus one file, one new layer)");
push(local("localhost/particle-demo:2"), OS_REPO);

const net = guestNetArgs(work, Number(registry.host.split(":")[1]), { [SIG_IP]: sigs.port });
const boot = async (what: string, name: string, script: string) => {
  say(`${what} (QEMU/TCG, OVMF, systemd-boot; 1-3 minutes)`);
  const r = await runDisk({ name: `demo-${name}`, disk, script, extraArgs: net, timeoutMs: 1_200_000 });
  console.log(humanOutput(r));
  console.log(`[${timing(r)}; ${since()} so far]`);
  return parse(r);
};
const must = (ok: boolean, what: string) => {
  if (!ok) throw new Error(`make demo: ${what}`);
};

const one = await boot("4. boot 1: version 1, installed from the registry; `particle upgrade` finds version 2 there and stages it", "1-upgrade", `${PRELUDE}
${GUEST_NET}
particle status
kv version "$(cat /${VERSION_FILE} 2>/dev/null || echo 1)"
t0=$(now)
particle upgrade
kv upgrade-seconds "$(awk "BEGIN{print $(now) - $t0}")"
particle status
particle status --json | j after
`);
must(one.kv.version === "1", `boot 1 should run version 1, found ${one.kv.version}`);
must(Boolean(one.json.after?.spec?.defaultDeployment) && one.json.after.spec.defaultDeployment !== one.json.after.status?.booted?.id, "particle upgrade staged nothing");
console.log(`particle upgrade in the guest (fetch the new layer, check its signature, stage): ${one.kv["upgrade-seconds"]} s; signature requests served: ${sigs.requests.length}`);

const two = await boot("boot 2: version 2, from the registry; then `particle rollback`", "2-on-v2", `${PRELUDE}
kv version "$(cat /${VERSION_FILE})"
particle status
particle rollback
`);
must(/version 2/.test(two.kv.version ?? ""), `boot 2 should run version 2, found ${two.kv.version}`);

const three = await boot("5. boot 3: back on version 1 after the rollback; `particle cleanup`", "3-back-on-v1", `${PRELUDE}
kv version "$(cat /${VERSION_FILE} 2>/dev/null || echo 1)"
particle status
particle cleanup
particle status
`);
must(three.kv.version === "1", `boot 3 should run version 1 again, found ${three.kv.version}`);

say(`done in ${since()}. Boot the disk yourself with \`make run\` (log in as root, no password), which runs:`);
console.log(`  qemu-system-x86_64 -accel tcg -cpu max,-avx,-avx2,-sha-ni -smp 2 -m 2048 -nographic \\
    -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \\
    -drive if=pflash,format=raw,unit=1,file=${disk}.vars.fd \\
    -drive file=${disk},format=raw,if=virtio`);
cleanup();
rmSync(work, { recursive: true, force: true });
