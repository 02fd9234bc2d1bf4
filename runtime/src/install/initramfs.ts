// Building the initramfs from a deployment's own kernel and dracut, with the particle dracut module,
// by chroot into the mounted (read-only) deployment. Writable scratch space (/tmp, /var/tmp, /run)
// is tmpfs for the duration; /proc, /sys and /dev are the host's. Everything mounted here is
// unmounted again, also on failure: a leftover bind would keep the deployment busy.
import { copyFileSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { run } from "../system/exec.ts";
import { MNT_DETACH, MS_BIND, MS_REC, mount, umount } from "../system/libc.ts";

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
  const mounted: string[] = [];
  const at = (p: string) => join(root, p);
  try {
    mount("proc", at("proc"), "proc", 0, null); mounted.push(at("proc"));
    mount("/sys", at("sys"), null, MS_BIND | MS_REC, null); mounted.push(at("sys"));
    mount("/dev", at("dev"), null, MS_BIND | MS_REC, null); mounted.push(at("dev"));
    for (const p of ["tmp", "var/tmp", "run"]) {
      if (!existsSync(at(p))) continue;
      mount("tmpfs", at(p), "tmpfs", 0, "mode=1777"); mounted.push(at(p));
    }
    log(`building the initramfs for ${kver} with dracut (this takes a minute or two)`);
    await run("chroot", [root, "dracut", ...dracutArgs("/tmp/particle-initrd.img", kver)], { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" }, extendEnv: false });
    copyFileSync(at("tmp/particle-initrd.img"), out);
  } finally {
    for (const m of mounted.reverse()) {
      try { umount(m, MNT_DETACH); } catch (e) { log(`warning: could not unmount ${m}: ${(e as Error).message}`); }
    }
  }
}
