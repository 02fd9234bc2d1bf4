// particle-boot's own options. Every input is overridable so the same binary runs on a host
// against a directory tree (tests) as in the initramfs (defaults).
import { parseArgs } from "node:util";

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

export function parseOptions(argv: string[]): Options {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        sysroot: { type: "string" },
        cmdline: { type: "string" },
        target: { type: "string" },
        "run-dir": { type: "string" },
        "no-kmsg": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
      strict: true,
    }).values;
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  for (const k of ["sysroot", "target", "run-dir"] as const) {
    const p = v[k];
    if (p !== undefined && !p.startsWith("/")) throw new Error(`--${k} ${p}: must be an absolute path`);
  }
  const sysroot = v.sysroot ?? "/sysroot";
  return {
    sysroot,
    cmdline: v.cmdline,
    target: v.target ?? sysroot,
    runDir: v["run-dir"] ?? "/run",
    kmsg: !v["no-kmsg"],
    help: v.help ?? false,
  };
}
