// Builds a source tree holding every kind of entry and attribute the store must carry. Made with
// the ordinary tools (mknod, setfattr, touch) so the fixture is independent of the code under test.
// Order per file matters: owner, then mode, then xattrs (chown clears setuid and security.capability).
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync, symlinkSync, linkSync, openSync, writeSync, closeSync, ftruncateSync } from "node:fs";
import { join } from "node:path";

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
const setx = (path: string, name: string, value: string) => sh("setfattr", ["-h", "-n", name, "-v", value, path]);

export interface FixtureOptions {
  /** Include a sparse file larger than 4 GiB. */
  huge?: boolean;
  /** Include a unix socket (tar cannot carry one). */
  socket?: boolean;
}

export function deterministicBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export function makeFixture(root: string, opts: FixtureOptions = {}): void {
  mkdirSync(root, { recursive: true });
  const p = (...xs: string[]) => join(root, ...xs);
  mkdirSync(p("dir/sub/deeper"), { recursive: true });
  for (const d of ["etc", "var", "sysroot"]) mkdirSync(p(d));
  writeFileSync(p("empty"), "");
  writeFileSync(p("hello"), "hello world\n");
  writeFileSync(p("dir/same-as-hello"), "hello world\n");
  writeFileSync(p("dir/sub/random-1M+1"), deterministicBytes(1024 * 1024 + 1, 42));
  writeFileSync(p("dir/sub/deeper/block-4096"), deterministicBytes(4096, 7));
  // Sparse: holes, then data, then a hole to the end.
  const fd = openSync(p("sparse"), "w");
  writeSync(fd, "middle", 0, "utf8");
  writeSync(fd, "data", 3 * 1024 * 1024, "utf8");
  ftruncateSync(fd, 8 * 1024 * 1024);
  closeSync(fd);
  if (opts.huge) {
    const h = openSync(p("huge-sparse"), "w");
    writeSync(h, "past four gigabytes", 4 * 1024 ** 3 + 12345, "utf8");
    ftruncateSync(h, 5 * 1024 ** 3);
    closeSync(h);
  }
  // Hardlinks, also across directories.
  writeFileSync(p("linked"), "linked content\n");
  linkSync(p("linked"), p("linked-2"));
  linkSync(p("linked"), p("dir/linked-3"));
  // Symlinks: relative, absolute, dangling, long.
  symlinkSync("hello", p("rel-link"));
  symlinkSync("/etc/passwd", p("abs-link"));
  symlinkSync("does/not/exist", p("dangling-link"));
  symlinkSync("x/".repeat(1500) + "end", p("long-link"));
  sh("mkfifo", [p("fifo")]);
  sh("mknod", [p("chr-1-3"), "c", "1", "3"]);
  sh("mknod", [p("blk-7-0"), "b", "7", "0"]);
  sh("mknod", [p("big-dev"), "c", "300", "70000"]);
  // A 0:0 character device is what overlayfs takes for a whiteout: composefs must escape it.
  sh("mknod", [p("whiteout-like"), "c", "0", "0"]);
  if (opts.socket) {
    sh("python3", ["-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", p("socket")]);
  }
  // Names: 255 bytes, non-UTF-8, spaces and newlines.
  writeFileSync(p("n".repeat(255)), "long name\n");
  writeFileSync(Buffer.concat([Buffer.from(root + "/latin1-"), Buffer.from([0xe9, 0xff, 0xfe])]), "not utf-8\n");
  writeFileSync(p("with space\nand newline"), "odd\n");
  // A directory large enough to span several EROFS directory blocks.
  mkdirSync(p("many"));
  for (let i = 0; i < 600; i++) writeFileSync(p("many", `entry-${String(i).padStart(4, "0")}-${"x".repeat(i % 40)}`), i % 3 ? `${i}\n` : "");
  // Owners (including ids above 65535), then modes, then xattrs.
  sh("chown", ["1000:1000", p("hello")]);
  sh("chown", ["70000:70001", p("dir/sub/random-1M+1")]);
  sh("chown", ["0:0", p("dir/sub")]);
  sh("chmod", ["4755", p("hello")]);
  sh("chmod", ["2711", p("dir/sub/random-1M+1")]);
  sh("chmod", ["1777", p("dir/sub/deeper")]);
  sh("chmod", ["0600", p("linked")]);
  sh("chmod", ["0750", p("dir")]);
  setx(p("hello"), "user.comment", "a user xattr");
  setx(p("hello"), "security.capability", "0x0100000200200000000000000000000000000000");
  setx(p("hello"), "trusted.particle-test", "0x00ff10");
  setx(p("dir"), "trusted.overlay.opaque", "y");
  setx(p("dir/same-as-hello"), "trusted.overlay.redirect", "/somewhere/else");
  setx(p("dir/sub"), "user.big", "v".repeat(2000));
  setx(p("empty"), "user.empty-value", "");
  // Timestamps last: every change above moved them. Directories after their contents.
  sh("touch", ["-h", "-d", "2001-02-03 04:05:06.123456789 UTC", p("hello"), p("rel-link"), p("fifo"), p("chr-1-3")]);
  sh("touch", ["-h", "-d", "1999-12-31 23:59:59.5 UTC", p("dir/sub/random-1M+1"), p("long-link")]);
  sh("touch", ["-d", "2010-10-10 10:10:10 UTC", p("dir/sub/deeper"), p("dir/sub"), p("many")]);
}
