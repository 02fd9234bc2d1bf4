// `make demo`: the README's main job, on real (emulated) hardware. A Debian trixie OS tree is built
// (mmdebstrap, cached) with Particle-OS in it, `particle install`ed to a disk image, and booted in
// QEMU through OVMF and systemd-boot. Inside the guest it stages an update, reboots into it, rolls
// back and reboots into the original, printing `particle status` at each step. Same steps and code
// as test/qemu/cycle.test.ts (test/qemu/lib/cycle.ts). The disk image stays behind for `make run`.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { homedir } from "node:os";
import { B_MARKER, backOnA, copyDisk, humanOutput, ON_B, parse, prepareCycle, STAGE_B, timing } from "./qemu/lib/cycle.ts";
import { runDisk } from "./qemu/lib/ovmf.ts";

const say = (s: string) => console.log(`\n==> ${s}`);
const t0 = Date.now();
const since = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
const out = process.env.PARTICLE_DEMO_DIR || join(process.env.PARTICLE_CACHE || join(homedir(), ".cache/particle-os"), "demo");
mkdirSync(out, { recursive: true });

say("building the Debian trixie tree with Particle-OS installed, its initramfs, and installing it to a disk image (cached after the first run)");
const c = await prepareCycle((m) => console.log(m));
console.log(c.installLog.trim());
const disk = copyDisk(c, join(out, "disk.img"));
console.log(`disk image: ${disk} (GPT: ESP with systemd-boot + ext4 root holding deployment A)  [${since()}]`);

const boot = async (what: string, name: string, script: string, lateDisks: string[] = []) => {
  say(`${what} (QEMU/TCG, OVMF, systemd-boot; 1-2 minutes)`);
  // 20 minutes: the first boot seals every object of A, then stages a whole tree, all under TCG.
  const r = await runDisk({ name: `demo-${name}`, disk, script, lateDisks, timeoutMs: 1_200_000 });
  console.log(humanOutput(r));
  console.log(`[${timing(r)}; ${since()} so far]`);
  return parse(r);
};

const one = await boot(`boot 1: deployment A; staging update B (tree A + /${B_MARKER}) from a second disk`, "1-stage-b", STAGE_B, [c.treeB]);
console.log(`staging B in the guest took ${one.kv["stage-seconds"]} s`);
const two = await boot("boot 2: the update B; then `particle rollback`", "2-on-b", ON_B);
console.log(`B's new file: ${two.kv.marker}`);
await boot("boot 3: back on A after the rollback; `particle cleanup`", "3-back-on-a", backOnA(two.kv.object!));

say(`done in ${since()}. Boot the disk yourself with \`make run\` (log in as root, no password), which runs:`);
console.log(`  qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2048 -nographic \\
    -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \\
    -drive if=pflash,format=raw,unit=1,file=${disk}.vars.fd \\
    -drive file=${disk},format=raw,if=virtio`);
