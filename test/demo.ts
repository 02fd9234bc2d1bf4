// The demo: a Debian trixie OS tree (mmdebstrap, cached) becomes a composefs deployment, is
// mounted with the real kernel and verified; then an update of that tree is staged and only its
// changed files are added to the store.
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { guestTree } from "./qemu/lib/guest.ts";

const particle = join(import.meta.dir, "../dist/particle");
const say = (s: string) => console.log(`\n==> ${s}`);
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "inherit"] }).toString();

say("building the Debian trixie demo tree (cached after the first run)");
const tree = await guestTree();
const work = mkdtempSync("/var/tmp/particle-demo-");
const sysroot = join(work, "sysroot");
const mnt = join(work, "root");
mkdirSync(mnt);
try {
  say(`staging ${tree.dir} as a composefs deployment`);
  let t = performance.now();
  const a = JSON.parse(sh(particle, ["stage", `dir:${tree.dir}`, "--sysroot", sysroot, "--json"]));
  console.log(`deployment ${a.id}: ${a.files} files, ${a.objectsAdded} objects, image ${a.imageDigest} (${((performance.now() - t) / 1000).toFixed(1)} s)`);

  say(`mounting deployment ${a.id} at ${mnt} (EROFS metadata + overlayfs data-only lower)`);
  sh(particle, ["mount", a.id, mnt, "--sysroot", sysroot]);
  console.log(sh("findmnt", ["-R", mnt]));
  console.log(readFileSync(join(mnt, "etc/os-release"), "utf8").split("\n").find((l) => l.startsWith("PRETTY_NAME")));
  sh(particle, ["unmount", mnt]);

  say("verifying every object and image digest");
  sh(particle, ["verify", "--sysroot", sysroot]);
  console.log("verified");

  say("staging an update (one changed file): only it and a new metadata image are added");
  const copy = join(work, "tree-b");
  sh("cp", ["-a", "--reflink=auto", tree.dir, copy]);
  appendFileSync(join(copy, "etc/motd"), "\nParticle-OS demo update\n");
  t = performance.now();
  const b = JSON.parse(sh(particle, ["stage", `dir:${copy}`, "--sysroot", sysroot, "--json"]));
  console.log(`deployment ${b.id}: ${b.objectsAdded} new object(s), ${b.bytesAdded} bytes added (${((performance.now() - t) / 1000).toFixed(1)} s)`);
  console.log(sh(particle, ["list", "--sysroot", sysroot]));
} finally {
  try { execFileSync(particle, ["unmount", mnt], { stdio: "ignore" }); } catch { /* not mounted */ }
  rmSync(work, { recursive: true, force: true });
}
