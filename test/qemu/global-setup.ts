// Builds what every QEMU file boots (the guest tree and its initramfs) once, before the files run
// side by side: otherwise each worker would find the cache cold and run mmdebstrap and dracut itself.
import { guestTree, initramfs } from "./lib/guest.ts";

export default async function setup(): Promise<void> {
  const t = Date.now();
  const g = await guestTree();
  await initramfs(g);
  console.log(`qemu tier: guest tree and initramfs ready in ${((Date.now() - t) / 1000).toFixed(0)} s`);
}
