// Building the initramfs from a deployment's own kernel and dracut, with the particle dracut module,
// by chroot into the mounted (read-only) deployment. Writable scratch space (/tmp, /var/tmp, /run)
// is tmpfs for the duration; /proc, /sys and /dev are the host's. Everything mounted here is
// unmounted again, also on failure: a leftover bind would keep the deployment busy.
import { copyFileSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { run } from "../system/exec.ts";
import { MountStack, mountChrootBase } from "../system/chroot-mounts.ts";

/** The kernel image of version `kver` in a tree: /usr/lib/modules/<kver>/vmlinuz, else Debian's /boot/vmlinuz-<kver>. */
export function kernelPath(root: string, kver: string): string | undefined {
  return [join(root, "usr/lib/modules", kver, "vmlinuz"), join(root, "boot", `vmlinuz-${kver}`)].find((p) => existsSync(p));
}

/** The kernel versions a tree has modules for, newest last. */
export function kernelVersions(root: string): string[] {
  const dir = join(root, "usr/lib/modules");
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((k) => kernelPath(root, k)).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

export function pickKernel(root: string, wanted?: string): { kver: string; path: string } {
  const kver = wanted ?? kernelVersions(root).at(-1);
  const path = kver ? kernelPath(root, kver) : undefined;
  if (!kver || !path) throw new Error(`no kernel found in the deployment (looked for /usr/lib/modules/<kver>/vmlinuz and /boot/vmlinuz-<kver>${wanted ? ` for ${wanted}` : ""})`);
  return { kver, path };
}

export const DRACUT_MODULE = "particle";

/** dracut arguments: --nostrip because stripping destroys the Bun executable's embedded code. */
export function dracutArgs(out: string, kver: string): string[] {
  return ["--force", "--no-hostonly", "--zstd", "--nostrip", "--add", DRACUT_MODULE, out, kver];
}

export async function buildInitramfs(root: string, kver: string, out: string, log: (m: string) => void = () => {}): Promise<void> {
  const mounts = new MountStack();
  try {
    mountChrootBase(mounts, root, { tmp: "mode=1777", "var/tmp": "mode=1777", run: "mode=1777" });
    log(`building the initramfs for ${kver} with dracut (this takes a minute or two)`);
    await run("chroot", [root, "dracut", ...dracutArgs("/tmp/particle-initrd.img", kver)], { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" }, extendEnv: false });
    copyFileSync(join(root, "tmp/particle-initrd.img"), out);
  } finally {
    mounts.release(log);
  }
}
