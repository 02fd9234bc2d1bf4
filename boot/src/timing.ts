// Where particle-boot's time goes in the guest, where it is hard to profile (QEMU TCG, initramfs,
// no tools): a mark per step costs one performance.now(), and main.ts writes them all as one kmsg
// record at exit, at debug level so the console (loglevel 7 prints up to info) never shows it.
// `dmesg | grep 'particle-boot: timing'` reads it; test/qemu/lib/bench.ts collects it.
// Imported first by main.ts, so its first mark is taken before the other modules are evaluated.
import { readFileSync } from "node:fs";

const marks: [string, number][] = [["js", performance.now()]];

export function mark(step: string): void {
  marks.push([step, performance.now()]);
}

/** Clock ticks per second of /proc/<pid>/stat; USER_HZ is 100 on every architecture Linux ships. */
const USER_HZ = 100;

/** When this process was forked, in seconds of CLOCK_BOOTTIME; null where /proc cannot say. */
function forkedAt(stat: string): number | null {
  // Field 22 (starttime); the command name, field 2, may contain spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[19]);
  return Number.isFinite(ticks) ? ticks / USER_HZ : null;
}

/**
 * `ms since Bun's time origin` per step, then the fork time: the kmsg record's own timestamp minus
 * the fork time is the whole run as systemd sees it, and the gap to `end` is Bun's start-up before
 * its time origin.
 */
export function formatTiming(m: readonly (readonly [string, number])[], stat: string | null): string {
  const steps = m.map(([s, t]) => `${s} ${t.toFixed(1)}`).join(", ");
  const forked = stat === null ? null : forkedAt(stat);
  return `timing (ms): ${steps}${forked === null ? "" : `; forked at ${forked.toFixed(2)} s`}`;
}

export function timingLine(): string {
  mark("end");
  let stat: string | null = null;
  try {
    stat = readFileSync("/proc/self/stat", "utf8");
  } catch {
    /* no /proc: the steps alone */
  }
  return formatTiming(marks, stat);
}
