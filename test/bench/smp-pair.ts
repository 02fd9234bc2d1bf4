// One plain boot (the plain QEMU test's ext4 root, the agent's script `exit 0`): how long the QEMU
// tier's guests take with PARTICLE_QEMU_SMP vCPUs. `make bench` runs it (boot section) as one guest
// with 2 vCPUs alone against two 1-vCPU guests side by side, which is how test/qemu now runs.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeExt4 } from "../qemu/lib/disk.ts";
import { guestTree, initramfs } from "../qemu/lib/guest.ts";
import { run } from "../qemu/lib/qemu.ts";

const g = await guestTree();
const initrd = await initramfs(g);
const work = mkdtempSync(join(tmpdir(), "particle-smp-"));
try {
  const img = join(work, "root.img");
  makeExt4(img, g.dir, 256);
  const r = await run({ name: `smp-${process.env.PARTICLE_QEMU_SMP}-${process.pid}`, kernel: g.kernel, initrd, append: "root=/dev/vda rw", disks: [img], script: "exit 0", timeoutMs: 900_000 });
  console.log(JSON.stringify({ smp: process.env.PARTICLE_QEMU_SMP, readyMs: r.readyMs, wallMs: r.wallMs }));
} finally {
  rmSync(work, { recursive: true, force: true });
}
