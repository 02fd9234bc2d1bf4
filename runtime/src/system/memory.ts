// Staging goes through phases that each leave a lot of garbage (scan results, worker messages, the
// image encoder's nodes). Bun's collector runs lazily, so without a nudge the garbage of one phase
// is still resident when the next one allocates, and peak memory is the sum of all phases
// (issue 13). A full collection costs tens of milliseconds; staging calls it a few times.
export function releaseMemory(): void {
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}
