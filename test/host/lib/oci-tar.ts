// A small tar writer for tests: crafts layer entries GNU tar cannot make from a directory (a
// hardlink to a file in a lower layer, whiteouts next to directories, GNU long-name records),
// byte by byte from the POSIX and GNU formats, independent of the reader under test.
export interface TarItem {
  path: string | Buffer;
  type?: "file" | "dir" | "symlink" | "link" | "chr" | "blk" | "fifo";
  data?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Whole seconds; negative ones are written in GNU base-256, as GNU tar does. */
  mtime?: number;
  /** A PAX "mtime" record (decimal seconds with a fraction, e.g. "-0.999999877"), beside the header's. */
  paxMtime?: string;
  /** Symlink target or hardlink target path (bytes: names need not be UTF-8). */
  linkname?: string | Buffer;
  xattrs?: Record<string, Buffer | string>;
  /** How a name over 100 bytes is written: a GNU "L" record (default) or a PAX path record. */
  longName?: "gnu" | "pax";
  devmajor?: number;
  devminor?: number;
}

const TYPE = { file: "0", link: "1", symlink: "2", chr: "3", blk: "4", dir: "5", fifo: "6" } as const;

function octal(b: Buffer, off: number, len: number, v: number): void {
  b.write(v.toString(8).padStart(len - 1, "0") + "\0", off, len, "latin1");
}

function header(name: Buffer, type: string, size: number, it: Omit<TarItem, "path">, gnu: boolean, linkname = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(512);
  name.copy(b, 0, 0, Math.min(100, name.length));
  octal(b, 100, 8, it.mode ?? (type === "5" ? 0o755 : 0o644));
  octal(b, 108, 8, it.uid ?? 0);
  octal(b, 116, 8, it.gid ?? 0);
  octal(b, 124, 12, size);
  const mtime = it.mtime ?? 1_600_000_000;
  if (mtime < 0) base256(b, 136, 12, mtime);
  else octal(b, 136, 12, mtime);
  b.write(type, 156, 1, "latin1");
  linkname.copy(b, 157, 0, Math.min(100, linkname.length));
  b.write(gnu ? "ustar  \0" : "ustar\x0000", 257, 8, "latin1");
  octal(b, 329, 8, it.devmajor ?? 0);
  octal(b, 337, 8, it.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return b;
}

/** GNU base-256: the 0x80 marker, then the value as big-endian two's complement. */
function base256(b: Buffer, off: number, len: number, v: number): void {
  let x = BigInt(v);
  for (let i = len - 1; i >= 0; i--) {
    b[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  b[off] = b[off]! | 0x80;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

export function tarBytes(items: TarItem[], opts: { endBlocks?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const it of items) {
    const type = TYPE[it.type ?? "file"];
    const name = Buffer.isBuffer(it.path) ? it.path : Buffer.from(it.path);
    const data = it.data === undefined ? Buffer.alloc(0) : Buffer.from(it.data);
    const link = Buffer.from(it.linkname ?? "");
    const pax: Buffer[] = [];
    if (it.paxMtime !== undefined) pax.push(paxRecord("mtime", Buffer.from(it.paxMtime)));
    for (const [k, v] of Object.entries(it.xattrs ?? {})) pax.push(paxRecord(`SCHILY.xattr.${k}`, Buffer.from(v)));
    let gnu = false;
    if (name.length > 100) {
      if (it.longName === "pax") pax.push(paxRecord("path", name));
      else {
        gnu = true;
        const body = Buffer.concat([name, Buffer.from([0])]);
        out.push(header(Buffer.from("././@LongLink"), "L", body.length, {}, true), body, pad(body.length));
      }
    }
    if (link.length > 100) {
      if (it.longName === "pax") pax.push(paxRecord("linkpath", link));
      else {
        gnu = true;
        const body = Buffer.concat([link, Buffer.from([0])]);
        out.push(header(Buffer.from("././@LongLink"), "K", body.length, {}, true), body, pad(body.length));
      }
    }
    if (pax.length) {
      const body = Buffer.concat(pax);
      out.push(header(Buffer.from("PaxHeader"), "x", body.length, {}, false), body, pad(body.length));
    }
    out.push(header(name, type, type === "0" ? data.length : 0, it, gnu, link));
    if (type === "0") out.push(data, pad(data.length));
  }
  if (opts.endBlocks !== false) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}
