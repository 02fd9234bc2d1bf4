// A booted Particle-OS machine on the host, for the docs test: a directory that is `/` for the
// commands (chroot), holding the physical root at /sysroot and the ESP at /boot/efi as a booted
// system has them, with the host's /usr and /etc bound in for the tools. The machine is a mount
// namespace of its own (a `sleep` started by unshare -m holds it), where the real particle binary
// is bound onto /opt/particle/bin and a file of the test's over /proc/cmdline: that is how particle
// learns which deployment is "booted", exactly as on a machine. Commands enter it with nsenter, so
// what one mounts the next sees, and nothing mounted there reaches the host or outlives stop().
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PARTICLE } from "./particle.ts";

export interface Machine {
  /** The host directory that is `/` for the commands. */
  root: string;
  /** Kernel command line the next command sees in /proc/cmdline. */
  cmdline: string;
  /** The process holding the machine's mount namespace. */
  pid: number;
}

export interface RunOutput {
  code: number;
  stdout: string;
  stderr: string;
}

export const SYSROOT = "/sysroot";
export const ESP = "/boot/efi";
const BIN = "/opt/particle/bin";
const PATH = `${BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin`;

const SETUP = `set -e
R=$1; P=$2
mount --bind /usr "$R/usr"
mount --bind /etc "$R/etc"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
mount -t proc proc "$R/proc"
mount --bind "$R/../cmdline" "$R/proc/cmdline"
mount --bind "$P" "$R${BIN}/particle"
`;

const sleepMs = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Starts the process that holds a new mount namespace; returns once it is in it. */
function holdNamespace(): number {
  const child = spawn("unshare", ["--mount", "--propagation", "private", "sleep", "infinity"], { stdio: "ignore", detached: true });
  child.unref();
  const pid = child.pid!;
  const ours = readlinkSync("/proc/self/ns/mnt");
  for (let i = 0; i < 200; i++) {
    try { if (readlinkSync(`/proc/${pid}/ns/mnt`) !== ours) return pid; } catch { /* not started yet */ }
    sleepMs(10);
  }
  process.kill(pid);
  throw new Error("unshare --mount did not make a namespace within 2 s");
}

/** An empty machine (no store yet) under `dir`, which must be empty. Stop it with stopMachine. */
export function makeMachine(dir: string): Machine {
  const root = join(dir, "root");
  for (const d of ["usr", "etc", "dev", "sys", "proc", "tmp", "var/tmp", "run", "root", "srv", "mnt", BIN.slice(1), SYSROOT.slice(1), ESP.slice(1)]) {
    mkdirSync(join(root, d), { recursive: true });
  }
  for (const d of ["tmp", "var/tmp"]) chmodSync(join(root, d), 0o1777);
  for (const l of ["bin", "sbin", "lib", "lib64"]) symlinkSync(`usr/${l}`, join(root, l));
  writeFileSync(join(root, BIN.slice(1), "particle"), "");
  symlinkSync("particle", join(root, BIN.slice(1), "particle-stage"));
  const m = { root, cmdline: "", pid: holdNamespace() };
  setCmdline(m, "");
  try {
    inNamespace(m, ["sh", "-c", SETUP, "setup", root, PARTICLE]);
  } catch (e) {
    stopMachine(m);
    throw e;
  }
  return m;
}

/** Ends the namespace, and with it every mount made in it. */
export function stopMachine(m: Machine): void {
  try { process.kill(m.pid); } catch { /* already gone */ }
}

/** Runs a program in the machine's namespace but outside its chroot (host paths); throws on failure. */
export function inNamespace(m: Machine, argv: string[]): string {
  const r = spawnSync("nsenter", ["-t", String(m.pid), "-m", ...argv], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${argv.join(" ")} (in the machine's namespace) exited ${r.status}: ${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

export function setCmdline(m: Machine, cmdline: string): void {
  m.cmdline = cmdline;
  writeFileSync(join(m.root, "..", "cmdline"), `${cmdline}\n`);
}

/** Runs a shell command line as root on the machine. */
export function runOn(m: Machine, command: string, timeoutMs = 120_000): RunOutput {
  const r = spawnSync("nsenter", ["-t", String(m.pid), "-m", "chroot", m.root, "/bin/sh", "-c", command], {
    encoding: "utf8",
    timeout: timeoutMs,
    maxBuffer: 1 << 26,
    env: { PATH, HOME: "/root", LANG: "C.UTF-8", TERM: "dumb" },
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function runOk(m: Machine, command: string): string {
  const r = runOn(m, command);
  if (r.code !== 0) throw new Error(`${command} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** What the boot loader starts at the next boot, per `particle status --json` on the machine. */
export function nextBoot(m: Machine): { id: string; options: string; file: string; esp: string } {
  const h = JSON.parse(runOk(m, "particle status --json"));
  const id: string | null = h.spec.defaultDeployment;
  const d = [h.status.booted, h.status.staged, h.status.rollback, ...h.status.other].find((x: any) => x?.id === id);
  if (!d?.bootEntry) throw new Error(`the next boot has no particle entry (default ${h.status.bootloader.defaultEntry})`);
  return { id: d.id, options: d.bootEntry.options, file: d.bootEntry.file, esp: h.status.bootloader.esp };
}

/**
 * A reboot as far as the store and the ESP can tell: particle-finalize.service at shutdown, then
 * the default entry boots and is blessed (systemd-bless-boot drops the "+N" tries counter from a
 * good entry's name). Returns the deployment now booted.
 */
export function reboot(m: Machine): string {
  runOk(m, "particle finalize");
  const next = nextBoot(m);
  const entries = join(m.root, next.esp, "loader/entries");
  const blessed = next.file.replace(/\+\d+(-\d+)?\.conf$/, ".conf");
  if (blessed !== next.file) renameSync(join(entries, next.file), join(entries, blessed));
  setCmdline(m, next.options);
  return next.id;
}

/** Copies host files (a shell and its libraries) into a tree so that scripts can run in a chroot of it. */
export function addHostShell(tree: string): void {
  for (const [from, to] of [["/usr/bin/dash", "usr/bin/sh"], ["/usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6"], ["/usr/lib64/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2"]] as const) {
    mkdirSync(join(tree, to, ".."), { recursive: true });
    copyFileSync(from, join(tree, to));
    chmodSync(join(tree, to), 0o755);
  }
  for (const l of ["bin", "lib", "lib64"]) symlinkSync(`usr/${l}`, join(tree, l));
}

export const readOn = (m: Machine, path: string): string => readFileSync(join(m.root, path), "utf8");
