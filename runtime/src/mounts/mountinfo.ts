// /proc/self/mountinfo, parsed. Pure: takes the file's text, so tests feed it fixtures.
// Fields (proc(5)): id parent major:minor root mountpoint options [optional…] - fstype source super.
// Paths escape space, tab, newline and backslash as \ooo octal.

export interface MountEntry {
  id: number;
  parent: number;
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-mount options (ro/rw, nosuid, …). */
  options: string;
  /** Per-superblock options (lowerdir=…, verity=…, …). */
  superOptions: string;
  /** Propagation tags such as shared:1, master:2. Empty means private. */
  propagation: string[];
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (f.length < 10 || sep < 0) throw new Error(`mountinfo: malformed line: ${line}`);
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      mountPoint: unescape(f[4]!),
      options: f[5]!,
      propagation: f.slice(6, sep),
      fsType: f[sep + 1]!,
      source: unescape(f[sep + 2]!),
      superOptions: f[sep + 3] ?? "",
    });
  }
  return out;
}

const under = (path: string, dir: string) => path === dir || path.startsWith(dir === "/" ? "/" : `${dir}/`);

/**
 * Mounts at or below `dir`, in the order they must be unmounted: deepest path first, and of
 * mounts stacked on one path the most recent (later in mountinfo) first.
 */
export function mountsUnder(entries: MountEntry[], dir: string): MountEntry[] {
  return entries
    .map((e, i) => ({ e, i }))
    .filter(({ e }) => under(e.mountPoint, dir))
    .sort((a, b) => depth(b.e.mountPoint) - depth(a.e.mountPoint) || b.i - a.i)
    .map(({ e }) => e);
}

const depth = (p: string) => (p === "/" ? 0 : p.split("/").length - 1);

/** The mount that holds `path` (the entry whose mount point is its longest prefix, topmost). */
export function mountContaining(entries: MountEntry[], path: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const e of entries) {
    if (!under(path, e.mountPoint)) continue;
    if (!best || e.mountPoint.length >= best.mountPoint.length) best = e;
  }
  return best;
}
