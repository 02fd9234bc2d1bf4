// A local apt repository for guests that must never reach outside: the host resolves a package
// list against the guest tree's dpkg status with its own apt (Debian's archive, checked with the
// tree's trixie keyring), downloads the missing .debs once into ~/.cache/particle-os (keyed by the
// list and the tree), and indexes them as a flat repository. serveRepo() serves it on 127.0.0.1;
// guestNetArgs() gives a guest a NIC whose only way out is one guestfwd rule to that server.
import { mkdirSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { join, normalize } from "node:path";
import { cached, hashOf } from "./cache.ts";
import { MIRROR, SUITE, sh, type GuestTree } from "./guest.ts";

/** Bump when the recipe changes. */
const REPO_VERSION = "1";
/** The address the guest's apt uses (guestNetArgs forwards it). */
export const REPO_IP = "10.0.2.100";

/** apt-get on the host, every file it reads or writes inside `dir` except the guest's status. */
function hostApt(dir: string, status: string, keyring: string): string[] {
  const empty = join(dir, "empty");
  mkdirSync(empty, { recursive: true });
  writeFileSync(join(dir, "sources.list"), `deb [signed-by=${keyring}] ${MIRROR} ${SUITE} main\n`);
  const o = (k: string, v: string) => ["-o", `${k}=${v}`];
  return [
    ...o("Dir::Etc::main", "/dev/null"), ...o("Dir::Etc::parts", empty), ...o("Dir::Etc::sourcelist", join(dir, "sources.list")),
    ...o("Dir::Etc::sourceparts", empty), ...o("Dir::Etc::preferences", "/dev/null"), ...o("Dir::Etc::preferencesparts", empty),
    ...o("Dir::State", join(dir, "state")), ...o("Dir::State::status", status), ...o("Dir::Cache", join(dir, "cache")),
    ...o("APT::Architecture", "amd64"), ...o("APT::Architectures", "amd64"), ...o("Acquire::Languages", "none"),
    ...o("Debug::NoLocking", "true"), ...o("APT::Sandbox::User", "root"),
  ];
}

/**
 * The .debs `packages` need on top of the guest tree (no recommends, as particle layer installs),
 * with a Packages index: a flat repository (`deb [trusted=yes] http://…/ ./`).
 */
export async function aptRepo(g: GuestTree, packages: readonly string[]): Promise<string> {
  const key = hashOf(REPO_VERSION, g.key, SUITE, MIRROR, [...packages].sort().join(","));
  return cached(`apt-repo-${key}`, async (out) => {
    const work = `${out}.work`;
    for (const d of ["state/lists/partial", "cache/archives/partial"]) mkdirSync(join(work, d), { recursive: true });
    const apt = hostApt(work, join(g.dir, "var/lib/dpkg/status"), join(g.dir, "usr/share/keyrings/debian-archive-keyring.gpg"));
    try {
      sh("apt-get", [...apt, "-q", "update"]);
      sh("apt-get", [...apt, "-q", "-y", "--no-install-recommends", "--download-only", "install", ...packages]);
      mkdirSync(out);
      const archives = join(work, "cache/archives");
      for (const f of readdirSync(archives).filter((f) => f.endsWith(".deb"))) renameSync(join(archives, f), join(out, f));
      writeFileSync(join(out, "Packages"), sh("dpkg-scanpackages", ["--multiversion", "."], { cwd: out }));
    } finally {
      sh("rm", ["-rf", work]);
    }
  });
}

/** Serves `dir` read-only on 127.0.0.1 (an ephemeral port); close() when done. */
export async function serveRepo(dir: string): Promise<{ port: number; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? "/").split("?")[0]!));
    requests.push(`${req.method} ${path}`);
    const file = join(dir, path);
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile() || !file.startsWith(dir)) throw new Error("not a file");
      size = st.size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Length": size, "Content-Type": "application/octet-stream" });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  // The guestfwd proxy holds one connection per guest connection, open as long as apt keeps it.
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { port, server, requests };
}

/**
 * One guest TCP connection ↔ one connection to the host's 127.0.0.1:PORT. QEMU runs it for each
 * connection the guest opens to REPO_IP:80 (guestfwd's cmd: form) with the connection on stdin and
 * stdout; the chardev form (`-tcp:127.0.0.1:PORT`) connects once, at QEMU's start, and carries every
 * guest connection over that one stream.
 */
const PROXY = `import { connect } from "node:net";
const s = connect(Number(process.argv[2]), "127.0.0.1");
process.stdin.pipe(s);
s.pipe(process.stdout);
s.on("error", () => process.exit(1));
s.on("close", () => process.exit(0));
`;

/**
 * QEMU arguments for a NIC with no way out (restrict=on: no route to the host or the internet, no
 * DNS, no NTP) but REPO_IP:80, forwarded to the repository server on the host's 127.0.0.1:port.
 */
export function guestNetArgs(work: string, port: number, more: Record<string, number> = {}): string[] {
  const proxy = join(work, "repo-proxy.mjs");
  writeFileSync(proxy, PROXY);
  // One guestfwd rule per server: guest IP:80 → host 127.0.0.1:port. Nothing else gets out.
  const rules = Object.entries({ [REPO_IP]: port, ...more }).map(([ip, p]) => `guestfwd=tcp:${ip}:80-cmd:${process.execPath} ${proxy} ${p}`);
  return [
    "-netdev", `user,id=n0,restrict=on,${rules.join(",")}`,
    "-device", "virtio-net-pci,netdev=n0",
  ];
}

/**
 * Guest shell: a static address on the NIC (systemd-networkd, nothing else on the network), the
 * repository as apt's only source, and a wait until it answers.
 */
export const GUEST_NET = `mkdir -p /run/systemd/network
printf '[Match]\\nType=ether\\n[Network]\\nAddress=10.0.2.15/24\\nLinkLocalAddressing=no\\nIPv6AcceptRA=no\\n' >/run/systemd/network/10-particle-test.network
systemctl start systemd-networkd
up=no
for i in $(seq 1 120); do
  if (exec 3<>/dev/tcp/${REPO_IP}/80) 2>/dev/null; then up=yes; break; fi
  sleep 1
done
kv repo-reachable "$up"
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
echo "deb [trusted=yes] http://${REPO_IP}/ ./" >/etc/apt/sources.list.d/particle-test.list
`;
