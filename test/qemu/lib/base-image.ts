// The Particle-OS base image (`make image`: image/build.sh), built once per input set and cached
// under $PARTICLE_CACHE: shared by test/host/image.test.ts and `make demo`.
import { spawn, execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { cached, fileHash, hashOf } from "./cache.ts";

export const REPO = resolve(__dirname, "../../..");

/** Runs image/build.sh LAYOUT in the background; resolves to the manifest digest it prints. */
export function buildImage(layout: string): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn("bash", [join(REPO, "image/build.sh"), layout, "latest"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...rootfsEnv() } });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("close", (code) => (code === 0 ? res(out.trim()) : rej(new Error(`image/build.sh ${layout} exited ${code}:\n${err.slice(-3000)}`))));
  });
}

/**
 * The tests and the demo take a rootfs of the ISO week, not of the day as `make image` does: the
 * QEMU guests' trees are fixed snapshots too, and a fresh mmdebstrap costs every first run of a
 * day about 2.5 minutes. PARTICLE_IMAGE_DAY, when set, still wins.
 */
function rootfsEnv(): Record<string, string> {
  if (process.env.PARTICLE_IMAGE_DAY) return {};
  return { PARTICLE_IMAGE_DAY: execFileSync("date", ["-u", "+%G-W%V"]).toString().trim() };
}

/** Every input of the base image: the rootfs tarball (image/rootfs.sh keys it itself), dist/ and what `make install` copies. */
async function imageKey(): Promise<string> {
  const files = ["dist/particle", "dist/particle-boot", "Makefile", ...["image", "runtime/units", "dracut-module/90particle", "grub", "systemd-boot"]
    .flatMap((d) => readdirSync(join(REPO, d)).sort().map((f) => join(d, f)))].filter((f) => statSync(join(REPO, f)).isFile());
  const parts: string[] = [execFileSync("bash", [join(REPO, "image/rootfs.sh")], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...rootfsEnv() } }).toString().trim()];
  for (const f of files) parts.push(f, await fileHash(join(REPO, f)));
  return hashOf(...parts);
}

/** The base image's OCI layout (tag `latest`), built when its inputs changed. Needs dist/ built. */
export async function baseImage(): Promise<string> {
  const key = await imageKey();
  return cached(`image-layout-${key}`, async (tmp) => void (await buildImage(tmp)));
}
