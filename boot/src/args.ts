// particle-boot's own options. Every input is overridable so the same binary runs on a host
// against a directory tree (tests) as in the initramfs (defaults).

export const USAGE = `usage: particle-boot [--sysroot DIR] [--cmdline STRING] [--target DIR] [--run-dir DIR] [--no-kmsg]
  --sysroot DIR     the physical root, mounted (default /sysroot)
  --cmdline STRING  kernel command line to use instead of /proc/cmdline (for testing)
  --target DIR      where the deployment's root ends up (default: the sysroot itself)
  --run-dir DIR     where /run/particle-booted and the work area go (default /run)
  --no-kmsg         do not copy messages to /dev/kmsg`;

export interface Options {
  sysroot: string;
  /** undefined: read /proc/cmdline. */
  cmdline: string | undefined;
  target: string;
  runDir: string;
  kmsg: boolean;
  help: boolean;
}

const VALUED = new Set(["sysroot", "cmdline", "target", "run-dir"]);
const FLAGS = new Set(["no-kmsg", "help"]);

// A hand-rolled parser rather than node:util's parseArgs: loading node:util costs ~3 ms of CPU
// at start-up on the host (more under QEMU TCG), and particle-boot's start-up is benchmarked.
// Accepts --name VALUE, --name=VALUE, flags, and -h.
function scan(argv: string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-h") { out.set("help", true); continue; }
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf("=");
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (FLAGS.has(name)) {
      if (eq >= 0) throw new Error(`option --${name} takes no value`);
      out.set(name, true);
    } else if (VALUED.has(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new Error(`option --${name} needs a value`);
      out.set(name, v);
    } else {
      throw new Error(`unknown option --${name}`);
    }
  }
  return out;
}

export function parseOptions(argv: string[]): Options {
  let v: Map<string, string | true>;
  try {
    v = scan(argv);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  const str = (k: string) => {
    const x = v.get(k);
    return typeof x === "string" ? x : undefined;
  };
  for (const k of ["sysroot", "target", "run-dir"]) {
    const p = str(k);
    if (p !== undefined && !p.startsWith("/")) throw new Error(`--${k} ${p}: must be an absolute path`);
  }
  const sysroot = str("sysroot") ?? "/sysroot";
  return {
    sysroot,
    cmdline: str("cmdline"),
    target: str("target") ?? sysroot,
    runDir: str("run-dir") ?? "/run",
    kmsg: !v.has("no-kmsg"),
    help: v.has("help"),
  };
}
