// One QEMU run = one boot. The host hands a script to the guest's test agent on a second disk, reads
// the serial console, and returns the script's output and exit status. The whole console goes to a
// log file so a failing test can be debugged after the fact.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, sh } from "./guest.ts";

/**
 * TCG only on this machine (no KVM). `max` without AVX, AVX2 and SHA-NI: QEMU 7.2 emulates those
 * vector instructions far slower than the scalar and SSE code the same programs pick without
 * them, and hashing is what the guests do most (staging, fs-verity, cleanup's store check).
 * Measured under qemu-user TCG on this host: Bun.SHA256 over 4 KiB blocks 6.7 MB/s with them
 * against 46 MB/s without, OpenSSL's SHA-256 21 against 112 MB/s; a GRUB-file boot that checks
 * the store after a power cut went from 145 s to 18 s from agent to power-off. The Bun binaries
 * need SSE4.2, not AVX2 (plain.test.ts runs them).
 */
export const QEMU_CPU = process.env.PARTICLE_QEMU_CPU || "max,-avx,-avx2,-sha-ni";
/**
 * One vCPU: the tier runs two guests at a time on the 2 host cores (test/qemu/vitest.config.ts), and
 * a single vCPU also rules out the multi-threaded TCG race behind the early-init oopses (below).
 */
export const QEMU_SMP = process.env.PARTICLE_QEMU_SMP || "1";
export const LOG_DIR = process.env.PARTICLE_QEMU_LOGS || join(REPO, "test/qemu/logs");

/** Added to every command line. Under TCG on a loaded host the vCPUs stall for seconds, so the
 *  lockup watchdog only adds noise; floppy (the i440fx FDC) and kvm (-cpu max has VMX) are modules
 *  udev would load for nothing. */
export const KERNEL_ARGS = "console=ttyS0 panic=1 nowatchdog modprobe.blacklist=floppy,kvm,kvm_intel,kvm_amd";

export interface BootOptions {
  /** Direct kernel boot; omit (with initrd and append) to boot from the disks' firmware (ovmf.ts). */
  kernel?: string;
  initrd?: string;
  /** Kernel command line; KERNEL_ARGS are added. */
  append?: string;
  /** More QEMU arguments, e.g. the OVMF pflash drives (ovmf.ts). */
  machineArgs?: string[];
  /** Raw disk images attached after the agent disk (/dev/vdc, …): the agent always reads /dev/vdb. */
  lateDisks?: string[];
  /** Raw disk images, attached as /dev/vda, /dev/vdb, … before the agent disk. */
  disks: string[];
  /** Bash script run by the agent after multi-user.target; omit when no agent is expected. */
  script?: string;
  /** Extra files for the script, copied next to it: name in the guest's cwd → host path. */
  files?: Record<string, string>;
  /** Name of the console log (LOG_DIR/<name>.log). */
  name: string;
  timeoutMs?: number;
  /** Stop (kill QEMU) as soon as the console matches this, e.g. a refusal in the initramfs. */
  until?: RegExp;
  /**
   * Every boot whose agent reports is required to be healthy: `systemctl is-system-running` says
   * "running" and no unit failed (boot() throws, naming the failed units). "exempt" is for boots
   * that are meant to fail (a failing health check, emergency mode); their tests check the state.
   */
  health?: "required" | "exempt";
  /**
   * How the agent powers off once it has reported: "orderly" (the default) stops every unit, as a
   * real shutdown does; "forced" skips that (on a deployment's boot, particle-finalize's ExecStop
   * starts the Bun binary under TCG) and is only for boots whose test checks nothing done at
   * shutdown: never with a staged deployment, whose /etc particle-finalize.service carries over
   * while stopping.
   */
  poweroff?: "orderly" | "forced";
}

export interface BootResult {
  /** The script's output (agent-prefixed lines only, prefix removed). */
  output: string;
  /** The script's exit status; null when the agent never reported. */
  exitCode: number | null;
  /** The whole serial console, \r removed. */
  console: string;
  logFile: string;
  /** Guest uptime (s) when the agent started: boot to multi-user.target, QEMU start-up excluded. */
  readyUptime: number | null;
  /** Host wall time from QEMU start to the READY marker, and to the end of the run. */
  readyMs: number | null;
  wallMs: number;
  timedOut: boolean;
  /** `until` matched. */
  matched: boolean;
  /** What `systemctl is-system-running --wait` said before the script ran; null without an agent. */
  systemState: string | null;
  /** `systemctl --failed` at that moment (unit names). */
  failedUnits: string[];
}

// QEMU runs still alive when the test process ends (a test timed out): never leave them behind.
const live = new Set<ReturnType<typeof spawn>>();
process.on("exit", () => {
  for (const q of live) q.kill("SIGKILL");
});

const READY = /@@PARTICLE-AGENT-READY ([0-9.]+)@@/;
const EXIT = /@@PARTICLE-AGENT-EXIT (\d+)@@/;
const LINE = /@@\| ?(.*)$/;
const SYSTEM = /@@PARTICLE-AGENT-SYSTEM (\S+)@@/;
const FAILED = /@@PARTICLE-AGENT-FAILED ([^@\n]*)@@/;

/** The agent's verdict on the boot (test/guest/agent/particle-test-agent), from its report. */
export function bootHealth(report: string): { systemState: string | null; failedUnits: string[] } {
  const failed = FAILED.exec(report)?.[1]?.trim() ?? "";
  return { systemState: SYSTEM.exec(report)?.[1] ?? null, failedUnits: failed ? failed.split(/\s+/) : [] };
}

/** Why a boot that must be healthy is not, or undefined. A boot whose agent never started (a
 *  timeout, a kernel panic) is its test's to explain. */
export function unhealthy(r: Pick<BootResult, "systemState" | "failedUnits" | "readyUptime" | "logFile">, name: string): string | undefined {
  if (r.readyUptime === null && r.systemState === null) return undefined;
  if (r.systemState === "running" && r.failedUnits.length === 0) return undefined;
  const failed = r.failedUnits.length ? r.failedUnits.join(", ") : "none";
  return `${name}: the boot is not healthy: systemctl is-system-running says ${JSON.stringify(r.systemState ?? "(no report)")}, failed units: ${failed} (console log: ${r.logFile})`;
}

/** The agent's flag file for BootOptions.poweroff "forced" (test/guest/agent/particle-test-agent). */
const POWEROFF_FORCE = "poweroff-force";

function agentDisk(dir: string, script: string, files: Record<string, string> = {}, poweroff: BootOptions["poweroff"] = "orderly"): string {
  const src = join(dir, "agent");
  mkdirSync(src);
  if (POWEROFF_FORCE in files) throw new Error(`agent file name ${POWEROFF_FORCE} is the agent's own flag`);
  writeFileSync(join(src, "script.sh"), script);
  if (poweroff === "forced") writeFileSync(join(src, POWEROFF_FORCE), "");
  for (const [name, path] of Object.entries(files)) sh("cp", ["-a", path, join(src, name)]);
  const tar = join(dir, "agent.tar");
  sh("tar", ["-cf", tar, "-C", src, "."]);
  return tar;
}

/**
 * A guest kernel that oopses before it runs the initramfs died of emulation, not of anything under
 * test: multi-threaded TCG (QEMU 7.2, -smp 2) now and then breaks the kernel's int3-based code
 * patching ("Oops: int3" in early init, seen once in ~60 boots). Intended failures (a missing
 * rdinit=, init=/bin/false) panic without an oops, or after /init.
 */
export function emulationCrash(consoleText: string): boolean {
  const oops = consoleText.search(/\b(Oops|BUG): /);
  if (oops < 0) return false;
  const init = consoleText.search(/Run \S+ as init process/);
  return init < 0 || oops < init;
}

/** One boot; retried once when the guest kernel crashed in early init (emulationCrash). The boot
 *  loader may have spent a try on the crashed attempt, as on real hardware. */
export async function boot(o: BootOptions): Promise<BootResult> {
  let r = await bootOnce(o);
  if (!r.matched && emulationCrash(r.console)) {
    renameSync(r.logFile, r.logFile.replace(/\.log$/, ".crashed.log"));
    process.stderr.write(`${o.name}: the guest kernel crashed in early init (emulation; see ${r.logFile.replace(/\.log$/, ".crashed.log")}); booting again\n`);
    r = await bootOnce(o);
  }
  const why = o.script !== undefined && o.health !== "exempt" ? unhealthy(r, o.name) : undefined;
  if (why) throw new Error(`${why}\n--- script output ---\n${r.output.split("\n").slice(-30).join("\n")}`);
  return r;
}

async function bootOnce(o: BootOptions): Promise<BootResult> {
  mkdirSync(LOG_DIR, { recursive: true });
  const logFile = join(LOG_DIR, `${o.name}.log`);
  const work = mkdtempSync(join(tmpdir(), "particle-qemu-"));
  const disks = [...o.disks];
  if (o.script !== undefined) disks.push(agentDisk(work, o.script, o.files, o.poweroff));
  const args = [
    // -nodefaults: no floppy, CD-ROM or VGA to probe (seconds each under TCG); the serial console
    // on stdio is all the harness reads (-nographic, minus the muxed monitor).
    "-accel", "tcg", "-cpu", QEMU_CPU, "-smp", QEMU_SMP, "-m", "2048", "-nodefaults", "-display", "none",
    // ttyS1: the agent's report alone (see test/guest/agent/particle-test-agent).
    "-serial", "stdio", "-serial", `file:${join(work, "agent.out")}`, "-no-reboot",
    ...(o.kernel ? ["-kernel", o.kernel, "-initrd", o.initrd!, "-append", `${o.append ?? ""} ${KERNEL_ARGS}`] : []),
    ...(o.machineArgs ?? []),
  ];
  disks.push(...(o.lateDisks ?? []));
  // cache=unsafe: no host fsync per guest flush (the host does not crash mid-test); the data is
  // still in the image file when QEMU exits or is killed.
  for (const d of disks) args.push("-drive", `file=${d},format=raw,if=virtio,cache=unsafe`);
  const log = createWriteStream(logFile);
  log.write(`# qemu-system-x86_64 ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ")}\n`);

  const start = Date.now();
  const qemu = spawn("qemu-system-x86_64", args, { stdio: ["pipe", "pipe", "pipe"] });
  live.add(qemu);
  let text = "";
  let readyMs: number | null = null;
  let timedOut = false;
  let matched = false;
  let exitSeen = false;
  const timeout = o.timeoutMs ?? 600_000;

  const done = new Promise<void>((resolve) => {
    let killTimer: NodeJS.Timeout | undefined;
    let cutTimer: NodeJS.Timeout | undefined;
    const kill = () => qemu.kill("SIGKILL");
    const cut = () => {
      if (matched) return;
      matched = true;
      kill();
    };
    const overall = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeout);
    const onData = (b: Buffer) => {
      log.write(b);
      text += b.toString("latin1");
      if (readyMs === null && READY.test(text)) readyMs = Date.now() - start;
      // The console copy of a line can overtake the report port's (two UARTs drain at their own
      // pace), and the report is what the test reads: wait for the report to show the line too,
      // bounded for an agent without a report port.
      if (!matched && cutTimer === undefined && o.until?.test(text.replace(/\r/g, ""))) {
        cutTimer = setTimeout(cut, 3_000);
      }
      // The agent asks for poweroff; give it 60 s, then stop waiting.
      if (!exitSeen && EXIT.test(text)) {
        exitSeen = true;
        killTimer = setTimeout(kill, 60_000);
      }
    };
    // The console copy of READY can be lost (getty resets the console as the agent starts): the
    // report port is the one to watch.
    const reportFile = join(work, "agent.out");
    const poll = setInterval(() => {
      if ((readyMs !== null && (matched || !o.until)) || !existsSync(reportFile)) return;
      const report = readFileSync(reportFile, "latin1");
      if (readyMs === null && READY.test(report)) readyMs = Date.now() - start;
      if (o.until?.test(report.replace(/\r/g, ""))) cut();
    }, 100);
    qemu.stdout.on("data", onData);
    qemu.stderr.on("data", onData);
    qemu.on("close", () => {
      live.delete(qemu);
      clearTimeout(overall);
      clearTimeout(killTimer);
      clearTimeout(cutTimer);
      clearInterval(poll);
      resolve();
    });
  });
  await done;
  const wallMs = Date.now() - start;
  await new Promise<void>((r) => log.end(r));
  // UTF-8: the report is text for people too (status prints ● and →).
  const report = existsSync(join(work, "agent.out")) ? readFileSync(join(work, "agent.out"), "utf8").replace(/\r/g, "") : "";
  rmSync(work, { recursive: true, force: true });

  const consoleText = text.replace(/\r/g, "");
  // The report port when the agent used it; the console copy (interleaved with kernel messages)
  // only for a guest whose agent predates it.
  const source = report.includes("@@") ? report : consoleText;
  const output = source.split("\n").flatMap((l) => {
    const m = LINE.exec(l);
    return m ? [m[1]!] : [];
  });
  const exit = EXIT.exec(source);
  const ready = READY.exec(source) ?? READY.exec(consoleText);
  const health = bootHealth(SYSTEM.test(source) ? source : consoleText);
  return {
    ...health,
    output: output.join("\n"),
    exitCode: exit ? Number(exit[1]) : null,
    console: consoleText,
    logFile,
    readyUptime: ready ? Number(ready[1]) : null,
    readyMs,
    wallMs,
    timedOut,
    matched,
  };
}

/** Boots and requires the agent's script to finish with status 0; the error carries the console tail. */
export async function run(o: BootOptions & { script: string }): Promise<BootResult> {
  const r = await boot(o);
  if (r.exitCode !== 0) {
    const tail = r.console.split("\n").slice(-60).join("\n");
    throw new Error(
      `${o.name}: agent ${r.exitCode === null ? (r.timedOut ? "timed out" : "never reported") : `exited ${r.exitCode}`}` +
        ` after ${(r.wallMs / 1000).toFixed(0)} s (console log: ${r.logFile})\n--- script output ---\n${r.output}\n--- console tail ---\n${tail}`,
    );
  }
  return r;
}
