// Reusing the booted deployment's initramfs for a new deployment. dracut in a chroot costs 1-2 min
// on real hardware and many more under emulation; most updates change neither the kernel nor
// anything dracut copies. The initramfs is reused only when the kernel is byte-identical (same
// digest as the booted entry's, which the ESP stores by content) and every input dracut reads is
// unchanged: the kernel's modules, dracut itself, its configuration, and the binaries, libraries,
// systemd units and udev rules it copies — compared by path, type, mode, size, mtime and link
// target, which staging preserves in the image. Anything else (a rebuilt library, a new module)
// gives a different key, and dracut runs as before.
import { nodeCrypto } from "../system/node-crypto.ts";
import type { Hash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** Tree paths whose contents can end up in (or steer) the initramfs. */
export function initramfsInputPaths(kver: string): string[] {
  return [
    `usr/lib/modules/${kver}`, "usr/lib/dracut", "usr/lib/systemd", "usr/lib/udev", "usr/lib/modprobe.d",
    "usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/bin", "usr/sbin",
    "etc/dracut.conf", "etc/dracut.conf.d", "etc/modprobe.d", "etc/udev", "etc/systemd", "etc/fstab", "etc/crypttab",
  ];
}

function walk(root: string, rel: string, h: Hash): void {
  const p = join(root, rel);
  let st;
  try { st = lstatSync(p, { bigint: true }); } catch { h.update(`${rel}\0-\n`); return; }
  const type = st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : st.isFile() ? "f" : "o";
  let line = `${rel}\0${type}\0${st.mode}\0${st.uid}:${st.gid}`;
  if (type === "f") line += `\0${st.size}\0${st.mtimeNs / 1_000_000_000n}`; // whole seconds: what every copy tool keeps
  if (type === "l") line += `\0${readlinkSync(p)}`;
  if (type === "o") line += `\0${st.rdev}`;
  h.update(`${line}\n`);
  if (type === "d") for (const n of readdirSync(p).sort()) walk(root, `${rel}/${n}`, h);
}

/** A digest of everything in `tree` that dracut reads for kernel `kver` (kernel bytes included). */
export function initramfsInputsKey(tree: string, kver: string, kernelPath: string): string {
  const h = nodeCrypto().createHash("sha256");
  h.update(`kver ${kver}\n`);
  h.update(readFileSync(kernelPath));
  for (const rel of initramfsInputPaths(kver)) walk(tree, rel, h);
  return h.digest("hex");
}

/** The ESP path of the booted entry's initramfs when it can serve the new deployment, else why not. */
export function reusableInitramfs(o: {
  esp: string;
  bootedInitrd: string | undefined;
  bootedKey: string;
  newKey: string;
}): { path: string } | { why: string } {
  if (!o.bootedInitrd) return { why: "the booted entry names no initramfs" };
  if (o.bootedKey !== o.newKey) return { why: "the kernel or the initramfs inputs differ from the booted deployment's" };
  const path = join(o.esp, o.bootedInitrd.replace(/^\/+/, ""));
  if (!existsSync(path)) return { why: `the booted initramfs ${path} is missing` };
  return { path };
}
