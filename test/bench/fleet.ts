// The fleet section of `make bench` (issue 10, section 6): 20 machines upgrade at once from one
// registry. Each must fetch only what it lacks, so the registry serves each about what one machine
// alone costs; the wall time of the 20 is set against one machine alone, in the same run.
//
// Workload: the delivery section's chunked image (delivery-workload.ts), v1 → v2. One sysroot stages
// v1 through the registry; the machines are `cp -al` clones of it (objects, blobs and images are
// immutable files and stay shared; every other file is copied, so no machine writes into another's),
// which keeps 21 machines of a 600 MB image within a few hundred MB of disk.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { deliveryWorkload } from "./delivery-workload.ts";
import { startBenchRegistry } from "./delivery-registry.ts";
import { BenchError, fmtBytes, fmtS, fmtX, log, sh, table, timed, type BenchContext, type BenchSection, type SectionResult, type Timing } from "./lib.ts";

const MACHINES = Number(process.env.BENCH_FLEET ?? 20);
/** A machine in the fleet may cost at most this much more than one alone (manifest retries, etc.). */
const TOLERANCE = 1.05;
const NO_VERIFY = "--insecure-no-verify-signatures";

async function cloneMachine(seed: string, to: string): Promise<void> {
  await sh(["bash", "-euo", "pipefail", "-c", `cp -al '${seed}' '${to}'
    find '${to}' -type f ! -path '*/particle/objects/*' ! -path '*/blobs/sha256/*' ! -path '*/particle/images/*' -print0 |
      while IFS= read -r -d '' f; do cp -p "$f" "$f.unshare" && mv "$f.unshare" "$f"; done`]);
}

const section: BenchSection = {
  name: "fleet",
  title: `Fleet: ${MACHINES} sysroots upgrade at once from one registry (issue 10 §6)`,
  async run(ctx: BenchContext): Promise<SectionResult> {
    const w = await deliveryWorkload(ctx);
    const work = join(w.dir, "fleet");
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const reg = await startBenchRegistry(join(work, "registry"));
    try {
      await reg.push(w.chunked, "v1", "fleet", "latest");
      const seed = join(work, "seed");
      await timed([ctx.particle, "stage", reg.ref("fleet", "latest"), "--sysroot", seed, "--json", NO_VERIFY], { env: reg.env });
      log(`cloning ${MACHINES + 1} machines from the v1 sysroot`);
      const machines = Array.from({ length: MACHINES + 1 }, (_, i) => join(work, `m${i}`));
      for (const m of machines) await cloneMachine(seed, m);
      await reg.push(w.chunked, "v2", "fleet", "latest");
      const upgrade = (m: string) => timed([ctx.particle, "upgrade", "--sysroot", m, "--from", "1", "--json", NO_VERIFY], { env: reg.env });
      const check = (t: Timing, m: string) => {
        const j = JSON.parse(t.stdout.trim().split("\n").at(-1)!);
        if (j.id !== "2") throw new BenchError(`${m}: particle upgrade staged ${JSON.stringify(j)}, expected deployment 2`);
      };

      reg.proxy.reset();
      const alone = await upgrade(machines[0]!);
      check(alone, machines[0]!);
      const aloneBytes = reg.proxy.bytes();
      log(`one machine alone: ${fmtBytes(aloneBytes)} in ${fmtS(alone.wallS)}; now ${MACHINES} at once`);

      reg.proxy.reset();
      const t0 = performance.now();
      const fleet = await Promise.all(machines.slice(1).map(async (m) => { const t = await upgrade(m); check(t, m); return t; }));
      const fleetS = (performance.now() - t0) / 1000;
      const perMachine = reg.proxy.bytes() / MACHINES;
      const blobGets = reg.proxy.served.filter((s) => s.method === "GET" && s.url.includes("/blobs/")).length;
      const slowest = Math.max(...fleet.map((t) => t.wallS));
      const cpu = fleet.reduce((n, t) => n + t.userS + t.sysS, 0);
      console.log(table([
        ["", "machines", "served in all", "served per machine", "wall", "cpu (user+sys)"],
        ["one alone", "1", fmtBytes(aloneBytes), fmtBytes(aloneBytes), fmtS(alone.wallS), fmtS(alone.userS + alone.sysS)],
        [`fleet`, String(MACHINES), fmtBytes(reg.proxy.bytes()), fmtBytes(perMachine), fmtS(fleetS), fmtS(cpu)],
      ]));
      console.log(`\nper machine: ${fmtX(perMachine / aloneBytes)} the bytes of one alone; ${blobGets} blob downloads in all`);
      console.log(`wall: ${MACHINES} at once ${fmtS(fleetS)} (slowest ${fmtS(slowest)}) vs one alone ${fmtS(alone.wallS)}: ${fmtX(fleetS / alone.wallS)} (${fmtX(fleetS / alone.wallS / MACHINES)} of ${MACHINES} sequential)`);
      const ratio = perMachine / aloneBytes;
      return {
        name: "fleet", failed: false,
        targets: [{ section: "fleet", name: `${MACHINES} at once: bytes per machine / one alone`, ratioLabel: "per machine / alone", ratio, target: `≤ ${TOLERANCE}×`, pass: ratio <= TOLERANCE }],
        data: { machines: MACHINES, aloneBytes, aloneS: alone.wallS, fleetBytes: reg.proxy.bytes(), perMachine, fleetS, slowestS: slowest, fleetCpuS: cpu, blobGets },
      };
    } finally {
      await reg.stop();
      if (!ctx.keep) rmSync(work, { recursive: true, force: true });
    }
  },
};
export default section;
