// A tree holding every kind of node and attribute the writers must carry, for tests of the EROFS
// (and other image) writers. File contents are in memory ("bytes").
import type { Entry, Inode, Xattr } from "../tree/model.ts";

const B = (s: string | number[]): Buffer => (typeof s === "string" ? Buffer.from(s) : Buffer.from(s));

/** Deterministic pseudo-random bytes (xorshift), so tests need no fixtures on disk. */
export function noise(len: number, seed = 1): Buffer {
  const b = Buffer.alloc(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export const BUILD_MTIME = { mtimeSec: 1_700_000_000, mtimeNsec: 0 };

const meta = (over: Partial<Inode> = {}): Omit<Inode, "kind"> => ({
  perm: 0o644,
  uid: 0,
  gid: 0,
  ...BUILD_MTIME,
  xattrs: [],
  size: 0,
  ...over,
});

export const file = (content: Buffer, over: Partial<Inode> = {}): Inode => ({
  ...meta(over),
  kind: "file",
  size: content.length,
  data: { kind: "bytes", bytes: content },
});
export const dir = (entries: [string | Buffer, Inode][], over: Partial<Inode> = {}): Inode => ({
  ...meta({ perm: 0o755, ...over }),
  kind: "dir",
  entries: entries
    .map(([n, inode]): Entry => ({ name: Buffer.isBuffer(n) ? n : B(n), inode }))
    .sort((a, b) => Buffer.compare(a.name, b.name)),
});
export const symlink = (target: string | Buffer, over: Partial<Inode> = {}): Inode => ({
  ...meta({ perm: 0o777, ...over }),
  kind: "symlink",
  target: Buffer.isBuffer(target) ? target : B(target),
});
export const special = (kind: "chr" | "blk" | "fifo" | "sock", major = 0, minor = 0, over: Partial<Inode> = {}): Inode => ({
  ...meta(over),
  kind,
  ...(kind === "chr" || kind === "blk" ? { rdevMajor: major, rdevMinor: minor } : {}),
});
export const xattr = (name: string, value: string | Buffer): Xattr => ({ name: B(name), value: Buffer.isBuffer(value) ? value : B(value) });

/** security.capability v2 granting cap_net_bind_service, as setcap writes it. */
export const CAP_NET_BIND = Buffer.from([0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

export function sampleTree(): Inode {
  const hard = file(B("three names, one inode\n"), { perm: 0o600 });
  const big: [string, Inode][] = [];
  for (let i = 0; i < 700; i++) big.push([`entry-${String(i).padStart(4, "0")}-${"x".repeat(i % 40)}`, file(B(`n${i}`))]);
  const sub: [string, Inode][] = [];
  for (let i = 0; i < 3; i++) sub.push([`d${i}`, dir([])]);
  return dir(
    [
      ["empty", file(Buffer.alloc(0))],
      ["hello.txt", file(B("hello, world\n"), { xattrs: [xattr("user.comment", "greeting"), xattr("user.empty", "")] })],
      ["block-exact", file(noise(4096, 2))],
      ["multi-block", file(noise(3 * 4096 + 123, 3), { mtimeSec: 1_600_000_000, mtimeNsec: 123_456_789 })],
      ["noise-100k", file(noise(100_000, 4))],
      ["zeros-2M", file(Buffer.alloc(2 << 20))],
      ["ping", file(B("\x7fELF"), { perm: 0o755, xattrs: [xattr("security.capability", CAP_NET_BIND)] })],
      ["suid", file(B("s"), { perm: 0o4755 })],
      ["sgid", file(B("g"), { perm: 0o2711 })],
      ["tmp", dir([], { perm: 0o1777 })],
      ["trusted", file(B("t"), { xattrs: [xattr("trusted.foo", "bar"), xattr("trusted.overlay.opaque", "y")] })],
      ["big-ids", file(B("ids"), { uid: 100_000, gid: 200_000 })],
      ["old", file(B("old"), { mtimeSec: 1, mtimeNsec: 999_999_999 })],
      ["h1", hard],
      ["h2", hard],
      ["sub", dir([...sub, ["h3", hard]])],
      ["rel", symlink("hello.txt")],
      ["abs", symlink("/etc/passwd")],
      ["dangling", symlink("../nowhere/at/all")],
      ["long-link", symlink(B("a/".repeat(2047) + "b"))],
      ["fifo", special("fifo")],
      ["null", special("chr", 1, 3)],
      ["sda1", special("blk", 8, 1)],
      ["bigdev", special("blk", 259, 1_048_575)],
      ["sock", special("sock")],
      ["x".repeat(255), file(B("long name"))],
      [B([0xff, 0xfe, 0x80, 0x2e, 0x41]), file(B("not utf-8"))],
      ["!bang", file(B("sorts before the dot"))],
      ["-dash", symlink("sorts before the dot too")],
      [".#lock", file(B("between . and .."))],
      ["...", file(B("after .."))],
      ["big-dir", dir(big)],
    ],
    { xattrs: [xattr("user.root", "yes")] },
  );
}
