// Staging goes through phases that each leave a lot of garbage (scan results, worker messages, the
// image encoder's nodes). Bun's collector runs lazily, so without a nudge the garbage of one phase
// is still resident when the next one allocates, and peak memory is the sum of all phases
// (issue 13). A full collection costs tens of milliseconds; staging calls it a few times.
export function releaseMemory(): void {
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}

/**
 * A young-generation collection: cheap (a few ms) where a loop makes garbage at a steady rate and
 * little of it survives. Bun lets the heap grow to about twice what is live before it collects on
 * its own, and staging's live heap is large (the tree model), so a loop over 57k objects otherwise
 * stacks ~28 MB of path strings on top of it (issue 13).
 */
export function collectYoung(): void {
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(false);
}
