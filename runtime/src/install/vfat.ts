// Filling a fresh vfat ESP without mounting it, with mtools: the host that installs need not have
// vfat in its kernel (these build machines do not). The ESP is assembled in a directory by the same
// code that writes a mounted ESP on a running system, then copied over in boot order: loader
// binaries, kernels and initramfs images first, loader.conf next, the entries last.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { run } from "../system/exec.ts";

const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: "1" };

/** Total bytes of the regular files under `dir`. */
export function treeSize(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    n += st.isDirectory() ? treeSize(p) : st.size;
  }
  return n;
}

/** The copy order, relative to the ESP root: everything an entry names comes before the entry. */
export function copyOrder(espDir: string): string[] {
  // grub/ holds GRUB's menu, which names kernels under particle/: it goes after them.
  const top = readdirSync(espDir).filter((n) => n !== "loader" && n !== "grub").sort();
  if (existsSync(join(espDir, "grub"))) top.push("grub");
  const loader = existsSync(join(espDir, "loader")) ? readdirSync(join(espDir, "loader")).filter((n) => n !== "entries").sort().map((n) => `loader/${n}`) : [];
  const entries = existsSync(join(espDir, "loader/entries")) ? ["loader/entries"] : [];
  return [...top, ...loader, ...entries];
}

export async function copyToVfat(espDir: string, device: string): Promise<void> {
  const opts = { env: MTOOLS_ENV };
  await run("mmd", ["-i", device, "::/loader"], opts).catch(() => {});
  for (const rel of copyOrder(espDir)) {
    const dest = rel.includes("/") ? `::/${rel.slice(0, rel.lastIndexOf("/"))}/` : "::/";
    await run("mcopy", ["-i", device, "-s", "-p", "-Q", "-D", "o", join(espDir, rel), dest], opts);
  }
}
