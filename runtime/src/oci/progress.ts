// Progress of long work (fetching, unpacking) in bytes: a redrawn bar on a terminal, plain lines
// otherwise (logs, journald, tests), at most one per PLAIN_STEP of the work.
export interface ProgressOut {
  write(s: string): unknown;
  isTTY?: boolean;
}

const UNITS = ["B", "KB", "MB", "GB", "TB"];
export function fmtBytes(n: number): string {
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${UNITS[i]}`;
}

/** Pure: one status line, "label [#####     ] 12.0 MB / 24.0 MB  50%" (no bar when the total is unknown). */
export function renderProgress(label: string, done: number, total: number | undefined, width = 24): string {
  if (!total) return `${label} ${fmtBytes(done)}`;
  const f = Math.min(1, done / total);
  const fill = Math.round(f * width);
  return `${label} [${"#".repeat(fill)}${" ".repeat(width - fill)}] ${fmtBytes(done)} / ${fmtBytes(total)} ${String(Math.floor(f * 100)).padStart(3)}%`;
}

const REDRAW_MS = 100;
const PLAIN_STEP = 0.25;

export class Progress {
  private label = "";
  private done = 0;
  private total: number | undefined;
  private lastDraw = 0;
  private lastStep = -1;
  private lastLine = "";

  constructor(private readonly out: ProgressOut) {}

  /** Starts a phase; `total` in bytes when known. */
  start(label: string, total?: number): void {
    this.finishLine();
    this.label = label;
    this.done = 0;
    this.total = total;
    this.lastStep = -1;
    this.lastLine = "";
    this.lastDraw = 0;
    this.draw(true);
  }

  add(n: number): void {
    this.set(this.done + n);
  }

  set(done: number): void {
    this.done = done;
    this.draw(false);
  }

  /** Ends the phase with its final figure. */
  end(): void {
    this.draw(true);
    this.finishLine();
    this.label = "";
  }

  private draw(force: boolean): void {
    if (!this.label) return;
    const line = renderProgress(this.label, this.done, this.total);
    if (this.out.isTTY) {
      const now = Date.now();
      if (!force && now - this.lastDraw < REDRAW_MS) return;
      this.lastDraw = now;
      this.out.write(`\r\x1b[K${line}`);
      return;
    }
    // Plain output: the start, each quarter of a known total, the end; nothing for unknown totals until the end.
    const step = this.total ? Math.floor((this.done / this.total) / PLAIN_STEP) : 0;
    if (!force && (step === this.lastStep || !this.total)) return;
    if (line === this.lastLine) return;
    this.lastStep = step;
    this.lastLine = line;
    this.out.write(`${line}\n`);
  }

  private finishLine(): void {
    if (this.label && this.out.isTTY) this.out.write("\n");
  }
}
