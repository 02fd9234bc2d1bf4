// Whether a layered deployment can boot with its lower deployment's initramfs, as rpm-ostree's
// layered deployments do by default: the initramfs only has to find and mount the root; modules a
// layer adds (DKMS) load from the real root after switch-root, found by the depmod index the layer
// rewrote. So the lower's initramfs serves as long as the layer only ADDED files among what dracut
// reads (or rewrote depmod's modules.* index) and left the kernel image alone. A layer that
// replaces or removes something dracut would copy (apt upgraded systemd, udev or a library), adds
// dracut configuration, or asks for it (--rebuild-initramfs, for a storage driver needed before
// the root is mounted) gets a new initramfs from dracut.
import { initramfsInputPaths } from "../deployments/initramfs-reuse.ts";
import type { UpperEntry } from "./upper.ts";

export type LayeredInitramfs = { reuseLower: true; why: string } | { reuseLower: false; why: string };

/** Where dracut's own configuration and modules live: an addition there changes what it builds. */
const DRACUT_SETUP = ["usr/lib/dracut", "etc/dracut.conf", "etc/dracut.conf.d"];

const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

export function planLayeredInitramfs(o: { kver: string | undefined; entries: readonly UpperEntry[]; force?: boolean }): LayeredInitramfs {
  if (o.force) return { reuseLower: false, why: "--rebuild-initramfs was given" };
  if (!o.kver) return { reuseLower: false, why: "the deployment's kernel version is unknown" };
  const kver = o.kver;
  const inputs = initramfsInputPaths(kver);
  const kernelImages = [`usr/lib/modules/${kver}/vmlinuz`, `boot/vmlinuz-${kver}`];
  const depmodIndex = new RegExp(`^usr/lib/modules/${kver.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/modules\\.[^/]+$`);
  let added = 0;
  for (const e of o.entries) {
    if (kernelImages.some((k) => under(e.path, k)) && e.kind !== "dir") return { reuseLower: false, why: `the layer changed the kernel image /${e.path}` };
    const hides = e.inLower && (e.kind === "whiteout" || (e.kind === "dir" && e.opaque === true));
    // A removal or an opaque directory above an input hides all of it.
    if (hides && inputs.some((i) => under(i, e.path) || under(e.path, i))) return { reuseLower: false, why: `the layer removed /${e.path}, which dracut reads` };
    if (e.kind === "dir" || e.kind === "whiteout") continue;
    if (!inputs.some((i) => under(e.path, i))) continue;
    if (e.inLower) {
      if (depmodIndex.test(e.path)) continue;
      return { reuseLower: false, why: `the layer replaced /${e.path}, which dracut may copy` };
    }
    if (DRACUT_SETUP.some((d) => under(e.path, d))) return { reuseLower: false, why: `the layer added dracut configuration /${e.path}` };
    added++;
  }
  return { reuseLower: true, why: added ? `the layer only added ${added} file(s) among the initramfs inputs (modules load from the root after switch-root)` : "the layer changed none of the initramfs inputs" };
}
