// Helpers of the layering host test: the store as a listing, mounts left under a directory, and
// the floor a layer run is measured against (plain apt-get in a chroot, no particle at all).
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const sh = (cmd: string, args: string[], env?: Record<string, string>) =>
  execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: env ? { ...process.env, ...env } : process.env, maxBuffer: 1 << 26 }).toString();

/**
 * Every path of a store with its type and size (and a file's content for the small JSON files),
 * sorted; apt's list cache is left out (apt-get update may refresh it, it is no part of any
 * deployment).
 */
export function storeListing(store: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    if (rel === "/cache/apt-lists") return;
    const st = lstatSync(join(store, rel));
    const small = st.isFile() && rel.endsWith(".json") ? ` ${readFileSync(join(store, rel), "utf8")}` : "";
    out.push(`${rel} ${st.isDirectory() ? "d" : st.isFile() ? `f ${st.size}` : "o"}${small}`);
    if (st.isDirectory()) for (const n of readdirSync(join(store, rel)).sort()) visit(`${rel}/${n}`);
  };
  visit("");
  return out;
}

export function mountsBelow(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "").filter((p) => p === dir || p.startsWith(`${dir}/`));
}

/**
 * The floor: the same apt-get update + install in a chroot over a plain overlay of the tree, with
 * the same options, timed from the first apt command to the end of the last. Returns the seconds
 * and whether `probe` (a path in the tree) exists afterwards.
 */
export function aptFloor(tree: string, work: string, packages: string[], probe: string): { seconds: number; found: boolean } {
  for (const d of ["upper", "work", "root"]) mkdirSync(join(work, d), { recursive: true });
  const root = join(work, "root");
  sh("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${tree},upperdir=${work}/upper,workdir=${work}/work`, root]);
  try {
    sh("mount", ["-t", "proc", "proc", join(root, "proc")]);
    sh("mount", ["--rbind", "/dev", join(root, "dev")]);
    sh("mount", ["--make-rslave", join(root, "dev")]);
    writeFileSync(join(root, "etc/resolv.conf"), readFileSync("/etc/resolv.conf"));
    writeFileSync(join(root, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", { mode: 0o755 });
    const env = { DEBIAN_FRONTEND: "noninteractive", LANG: "C.UTF-8", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
    const t = performance.now();
    sh("chroot", [root, "apt-get", "-q", "update"], env);
    sh("chroot", [root, "apt-get", "-y", "-q", "--no-install-recommends", "install", ...packages], env);
    const seconds = (performance.now() - t) / 1000;
    let found = true;
    try { lstatSync(join(root, probe)); } catch { found = false; }
    return { seconds, found };
  } finally {
    sh("umount", ["-R", root]);
  }
}
