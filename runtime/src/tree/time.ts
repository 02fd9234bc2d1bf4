// Timestamps as the tree model and every on-disk format keep them: whole seconds, negative before
// 1970, plus nanoseconds always in [0, 1e9). That is floor division, as in struct timespec: the
// instant 0.5 s before the epoch is (-1 s, 500000000 ns), never (0 s, -500000000 ns). Truncating
// division (BigInt's `/` and `%`) gives the second form, which no writer can store.
const NS_PER_SEC = 1_000_000_000n;

/** Nanoseconds since the epoch → [seconds, nanoseconds], floored. */
export function splitNs(ns: bigint): [number, number] {
  let sec = ns / NS_PER_SEC;
  let nsec = ns % NS_PER_SEC;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS_PER_SEC;
  }
  if (sec > BigInt(Number.MAX_SAFE_INTEGER) || sec < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error(`time ${ns} ns is out of range`);
  return [Number(sec), Number(nsec)];
}

/**
 * A decimal number of seconds ("1700000000.5", "-1.5", "-0.25") → [seconds, nanoseconds], floored.
 * The sign applies to the whole number, so "-1.5" is 1.5 s before the epoch: (-2, 500000000).
 * Digits past the ninth are dropped, as Go's archive/tar (umoci, buildah, containerd) does.
 */
export function parseDecimalSeconds(text: string): [number, number] | undefined {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text);
  if (!m) return undefined;
  const [, sign, whole, frac = ""] = m;
  const ns = BigInt(whole!) * NS_PER_SEC + BigInt(frac.slice(0, 9).padEnd(9, "0"));
  return splitNs(sign ? -ns : ns);
}
