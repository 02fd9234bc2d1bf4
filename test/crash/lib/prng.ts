// The campaign's randomness: one printed seed (PARTICLE_CRASH_SEED replays it), a generator per
// command derived from it, so replaying one command (vitest -t) gives it the same draws.
export function campaignSeed(): number {
  const fixed = process.env.PARTICLE_CRASH_SEED;
  if (fixed !== undefined && fixed !== "") {
    const n = Number(fixed);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`PARTICLE_CRASH_SEED=${fixed}: expected an integer from 0 to 4294967295`);
    return n;
  }
  return Math.floor(Math.random() * 0x100000000);
}

/** mulberry32: small, fast, and good enough to spread kill moments. */
export function prng(seed: number, salt: string): () => number {
  let a = seed >>> 0;
  for (const c of salt) a = Math.imul(a ^ c.charCodeAt(0), 0x9e3779b1) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x100000000;
  };
}

/** `n` of `xs`, chosen by `rand`, in their original order (all of them when n >= xs.length). */
export function sample<T>(xs: readonly T[], n: number, rand: () => number): T[] {
  if (n >= xs.length) return [...xs];
  const idx = xs.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => xs[i]!);
}
