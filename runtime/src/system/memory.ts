// Staging goes through phases that each leave a lot of garbage (scan results, worker messages, the
// image encoder's nodes). Bun's collector runs lazily, so without a nudge the garbage of one phase
// is still resident when the next one allocates, and peak memory is the sum of all phases
// (issue 13). A full collection costs tens of milliseconds; staging calls it a few times.
const bunGc = (full: boolean): void => (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(full);

export function releaseMemory(): void {
  bunGc(true);
}

/**
 * A tick for a loop that makes garbage at a steady rate and keeps little of it: every `every`-th
 * call runs a young-generation collection (a few ms). Bun lets the heap grow to about twice what is
 * live before it collects on its own, and staging's live heap is large (the tree model), so a loop
 * over 57k objects otherwise stacks ~28 MB of path strings on top of it (issue 13).
 */
export function youngCollector(every: number): () => void {
  let n = 0;
  return () => {
    if (++n % every === 0) bunGc(false);
  };
}
