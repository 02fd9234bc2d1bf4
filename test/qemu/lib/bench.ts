// Benchmarks of issue 3, for `make bench` (benchQemu) — all from QEMU runs of one guest build:
//  - particle-boot start to exit vs an empty compiled Bun program, both run as initrd services in
//    the same boot and timed from systemd's "Starting"/"Finished" journal entries;
//  - boot to the agent (after multi-user.target, ≈ the login prompt) for the composefs deployment vs
//    the same tree on a plain ext4 root, alternating, same initramfs;
//  - initramfs size with vs without the particle module.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cached, fileHash, hashOf } from "./cache.ts";
import { makeExt4 } from "./disk.ts";
import { deployCmdline, stage } from "./deploy.ts";
import { guestTree, initramfs, REPO, sh, size } from "./guest.ts";
import { run, type BootResult } from "./qemu.ts";

const BUN = join(REPO, "node_modules/.bin/bun");
// The Makefile's flags, so the baseline is built like particle-boot.
const BUN_FLAGS = ["--compile", "--minify", "--bytecode", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig"];

/** test/guest/bench/<name>.ts compiled by the project's Bun, cached. */
export async function emptyBunProgram(name: "empty"): Promise<string> {
  const src = join(REPO, "test/guest/bench", `${name}.ts`);
  const key = hashOf(await fileHash(src), sh(BUN, ["--version"]), BUN_FLAGS.join(" "));
  return cached(`bun-${name}-${key}`, async (out) => {
    sh(BUN, ["build", ...BUN_FLAGS, src, "--outfile", out]);
  });
}

const EMPTY_UNIT = `[Unit]
Description=Particle-OS bench: empty Bun program
DefaultDependencies=no
After=sysroot.mount
Before=particle-root.service initrd-root-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/particle-bench-empty
`;

/** Journal lines of the initrd services, timed by systemd (monotonic seconds), and particle-boot's
 *  own step timing record (boot/src/timing.ts). */
const TIMES_SCRIPT = `journalctl -b -o short-monotonic _PID=1 | grep -E ': (Starting|Finished) particle-(root|bench-empty)\\.service' || true
dmesg | grep 'particle-boot: timing' || true
systemd-analyze || true`;

/**
 * The floor the first-boot sealing is held against: reading the same tree's bytes once from the
 * plain ext4 root, cold (every regular file of the root filesystem: the tree the store was staged
 * from, whose distinct contents are the store's objects). Run in the plain boots, where no
 * fs-verity verification adds to the reads.
 */
const READ_ONCE_SCRIPT = `${TIMES_SCRIPT}
bytes=$(find / -xdev -type f -printf '%s\\n' | awk '{s+=$1} END {print s}')
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(cut -d' ' -f1 /proc/uptime)
find / -xdev -type f -print0 | xargs -0 cat > /dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
echo "KV:read-once-bytes:$bytes"
echo "KV:read-once-seconds:$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')"`;

/** A KV: line of the agent's output. */
export function kvNumber(output: string, key: string): number | null {
  const m = new RegExp(`^KV:${key}:([0-9.]+)$`, "m").exec(output);
  return m ? Number(m[1]) : null;
}

export function serviceSeconds(output: string, unit: string): number | null {
  const at = (what: string) => {
    const m = new RegExp(`\\[\\s*([0-9.]+)\\] .*: ${what} ${unit}\\.service`).exec(output);
    return m ? Number(m[1]) : null;
  };
  const a = at("Starting");
  const b = at("Finished");
  return a !== null && b !== null ? b - a : null;
}

/** particle-boot's step marks (boot/src/timing.ts): step → ms since Bun's time origin. */
export function bootSteps(output: string): Record<string, number> | null {
  const m = /particle-boot: timing \(ms\): ([^;\n]*)/.exec(output);
  if (!m) return null;
  const out: Record<string, number> = {};
  for (const part of m[1]!.split(", ")) {
    const sp = part.lastIndexOf(" ");
    out[part.slice(0, sp)] = Number(part.slice(sp + 1));
  }
  return out;
}

export interface QemuBench {
  initramfsBytes: { withModule: number; withoutModule: number; added: number };
  particleBootSeconds: number[];
  emptyBunSeconds: number[];
  /** particle-boot's step marks per round (bootSteps), and in the first (sealing) boot. */
  particleBootSteps: (Record<string, number> | null)[];
  particleBootFirstSteps: Record<string, number> | null;
  bootToAgent: { composefs: number[]; plainExt4: number[] };
  firstBootSealingSeconds: number | null;
  /** particle-root.service in the first boot (sealing every object, then mounting) and in the later ones. */
  particleRootFirstSeconds: number | null;
  /** Reading the tree once, cold, from the plain ext4 root (READ_ONCE_SCRIPT). */
  readOnce: { seconds: number; bytes: number } | null;
  stage: { seconds: number; objectsAdded: number; bytesAdded: number };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function benchQemu(opts: { rounds?: number; log?: (s: string) => void } = {}): Promise<QemuBench> {
  const rounds = opts.rounds ?? 1;
  const log = opts.log ?? ((s: string) => console.error(s));
  const g = await guestTree();
  const withModule = await initramfs(g);
  const withoutModule = await initramfs(g, { particle: false });

  // The benchmark initramfs: the real module plus the empty Bun program as a sibling service.
  const empty = await emptyBunProgram("empty");
  const inc = mkdtempSync(join(tmpdir(), "particle-bench-inc-"));
  const work = mkdtempSync(join(tmpdir(), "particle-bench-"));
  try {
    mkdirSync(join(inc, "usr/bin"), { recursive: true });
    mkdirSync(join(inc, "usr/lib/systemd/system/initrd-root-fs.target.wants"), { recursive: true });
    sh("cp", [empty, join(inc, "usr/bin/particle-bench-empty")]);
    writeFileSync(join(inc, "usr/lib/systemd/system/particle-bench-empty.service"), EMPTY_UNIT);
    symlinkSync("../particle-bench-empty.service", join(inc, "usr/lib/systemd/system/initrd-root-fs.target.wants/particle-bench-empty.service"));
    const initrd = await initramfs(g, { include: [[inc, "/"]], includeKey: hashOf(await fileHash(empty), EMPTY_UNIT) });

    const plainImg = join(work, "plain.img");
    makeExt4(plainImg, g.dir, 256);
    const sysroot = join(work, "sysroot");
    const t0 = Date.now();
    const s = stage(g.dir, sysroot);
    const stageSeconds = (Date.now() - t0) / 1000;
    const cfsImg = join(work, "composefs.img");
    makeExt4(cfsImg, sysroot, 512);
    rmSync(sysroot, { recursive: true, force: true });

    // Generous: sealing 500 MB under TCG on a loaded host took up to 10 minutes.
    const bootOnce = (name: string, img: string, append: string, script = TIMES_SCRIPT): Promise<BootResult> =>
      run({ name, kernel: g.kernel, initrd, append, disks: [img], script, timeoutMs: 1_200_000 });
    // First boot seals the store (fs-verity on every object): timed apart, it happens once.
    const first = await bootOnce("bench-first", cfsImg, deployCmdline(s));
    log(`bench: first (sealing) boot ${first.readyUptime} s`);
    const res: QemuBench = {
      initramfsBytes: { withModule: size(withModule), withoutModule: size(withoutModule), added: size(withModule) - size(withoutModule) },
      particleBootSeconds: [],
      emptyBunSeconds: [],
      particleBootSteps: [],
      particleBootFirstSteps: bootSteps(first.output),
      bootToAgent: { composefs: [], plainExt4: [] },
      firstBootSealingSeconds: first.readyUptime,
      particleRootFirstSeconds: serviceSeconds(first.output, "particle-root"),
      readOnce: null,
      stage: { seconds: stageSeconds, objectsAdded: s.objectsAdded, bytesAdded: s.bytesAdded },
    };
    for (let i = 0; i < rounds; i++) {
      // The read-once floor in the first round only: it runs after the agent is ready, so it does not
      // change the boot figure, but it costs a minute of TCG per run.
      const p = await bootOnce(`bench-plain-${i}`, plainImg, "root=/dev/vda rw", i === 0 ? READ_ONCE_SCRIPT : TIMES_SCRIPT);
      if (i === 0) {
        const seconds = kvNumber(p.output, "read-once-seconds");
        const bytes = kvNumber(p.output, "read-once-bytes");
        if (seconds !== null && bytes !== null) res.readOnce = { seconds, bytes };
      }
      const c = await bootOnce(`bench-composefs-${i}`, cfsImg, deployCmdline(s));
      res.bootToAgent.plainExt4.push(p.readyUptime!);
      res.bootToAgent.composefs.push(c.readyUptime!);
      const pb = serviceSeconds(c.output, "particle-root");
      const eb = serviceSeconds(c.output, "particle-bench-empty");
      if (pb !== null) res.particleBootSeconds.push(pb);
      if (eb !== null) res.emptyBunSeconds.push(eb);
      res.particleBootSteps.push(bootSteps(c.output));
      log(`bench: round ${i}: plain ${p.readyUptime} s, composefs ${c.readyUptime} s, particle-boot ${pb} s, empty Bun ${eb} s`);
      log(`bench: round ${i}: particle-boot steps (ms) ${JSON.stringify(res.particleBootSteps.at(-1))}`);
    }
    return res;
  } finally {
    rmSync(inc, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

const fmt = (x: number | null, d = 1) => (x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(d));

/** The first boot's particle-boot minus a later one's: the sealing alone. */
export function sealingSeconds(b: QemuBench): number | null {
  const later = median(b.particleBootSeconds);
  return b.particleRootFirstSeconds === null || !Number.isFinite(later) ? null : b.particleRootFirstSeconds - later;
}

export function sealingVsRead(b: QemuBench): number | null {
  const s = sealingSeconds(b);
  return s === null || !b.readOnce || b.readOnce.seconds <= 0 ? null : s / b.readOnce.seconds;
}

/** One-line-per-measure summary with the ratios the targets are stated in. */
export function formatBench(b: QemuBench): string {
  // Decimal MB, the unit of the initramfs target (test/bench/boot.ts compares bytes with 46e6).
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  const pb = median(b.particleBootSeconds);
  const eb = median(b.emptyBunSeconds);
  const c = median(b.bootToAgent.composefs);
  const p = median(b.bootToAgent.plainExt4);
  return [
    `particle-boot start→exit: ${pb.toFixed(2)} s vs empty Bun ${eb.toFixed(2)} s = ${(pb / eb).toFixed(2)}× (target ≤ 1.3×)`,
    `boot to agent (after multi-user.target): composefs ${c.toFixed(1)} s vs plain ext4 ${p.toFixed(1)} s = ${(c / p).toFixed(3)}× (target ≤ 1.05×; medians of ${b.bootToAgent.composefs.length})`,
    `initramfs: ${mb(b.initramfsBytes.withModule)} with the module, ${mb(b.initramfsBytes.withoutModule)} without: +${mb(b.initramfsBytes.added)} (target ≤ +46 MB)`,
    `first boot (sealing the store): ${b.firstBootSealingSeconds?.toFixed(1)} s to the agent`,
    `sealing: particle-boot ${fmt(b.particleRootFirstSeconds)} s on the first boot vs ${pb.toFixed(2)} s later, so sealing ≈ ${fmt(sealingSeconds(b))} s` +
      (b.readOnce ? `; reading the tree once (cold, plain ext4) ${b.readOnce.seconds.toFixed(1)} s for ${mb(b.readOnce.bytes)}: sealing = ${fmt(sealingVsRead(b), 2)}× reading` : ""),
    `stage on the host: ${b.stage.seconds.toFixed(1)} s, ${b.stage.objectsAdded} objects, ${mb(b.stage.bytesAdded)}`,
  ].join("\n");
}

// `bun test/qemu/lib/bench.ts`: the QEMU half of `make bench` on its own.
if (import.meta.main) {
  const b = await benchQemu({ rounds: Number(process.env.PARTICLE_BENCH_ROUNDS ?? 1) });
  console.log(formatBench(b));
  console.log(JSON.stringify(b));
}
