// One 512-byte tar header block → its fields. ustar (POSIX) and GNU variants; numbers in octal or,
// for values that do not fit (uid > 2097151, size ≥ 8 GiB), GNU's base-256 form.
export const BLOCK = 512;

export interface TarHeader {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch, negative before 1970. */
  mtime: number;
  /** The raw type flag character ("0", "5", "x", "L", …); "\0" is an old-style regular file. */
  type: string;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
}

const field = (b: Uint8Array, off: number, len: number): Buffer => {
  const s = Buffer.from(b.buffer, b.byteOffset + off, len);
  const nul = s.indexOf(0);
  return Buffer.from(nul < 0 ? s : s.subarray(0, nul));
};

/**
 * Parses a numeric field: octal text (NUL/space padded) or base-256 (high bit of the first byte set,
 * the rest a big-endian two's complement number). Only `signed` fields may be negative: GNU tar
 * writes an mtime before 1970 in base-256.
 */
export function parseNumber(b: Uint8Array, off: number, len: number, what: string, signed = false): number {
  if (b[off]! & 0x80) {
    let v = BigInt(b[off]! & 0x7f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(b[off + i]!);
    // 0x40 of the first byte is the sign bit of the remaining 8*len-1 bits.
    if (b[off]! & 0x40) v -= 1n << BigInt(8 * len - 1);
    if (v < 0n && !signed) throw new Error(`tar header: negative ${what}`);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error(`tar header: ${what} out of range`);
    return Number(v);
  }
  const text = field(b, off, len).toString("latin1").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new Error(`tar header: ${what} is not an octal number: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

/** The header's checksum: the byte sum with the checksum field counted as spaces (unsigned, as POSIX says; some old tars summed signed bytes). */
function checksums(b: Uint8Array): [number, number] {
  let u = 0;
  let s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : b[i]!;
    u += v;
    s += v > 127 ? v - 256 : v;
  }
  return [u, s];
}

export const isZeroBlock = (b: Uint8Array): boolean => b.every((x) => x === 0);

export function parseHeader(b: Uint8Array): TarHeader {
  if (b.length !== BLOCK) throw new Error(`tar header: expected ${BLOCK} bytes, got ${b.length}`);
  const want = parseNumber(b, 148, 8, "checksum");
  const [u, s] = checksums(b);
  if (want !== u && want !== s) throw new Error(`tar header: bad checksum (${want}, computed ${u}): not a tar stream, or corrupted`);
  const magic = Buffer.from(b.buffer, b.byteOffset + 257, 8).toString("latin1");
  let name = field(b, 0, 100);
  // POSIX ustar splits long names into prefix/name; GNU tar uses that area for other fields.
  if (magic.startsWith("ustar\0")) {
    const prefix = field(b, 345, 155);
    if (prefix.length) name = Buffer.concat([prefix, Buffer.from("/"), name]);
  }
  return {
    name,
    mode: parseNumber(b, 100, 8, "mode"),
    uid: parseNumber(b, 108, 8, "uid"),
    gid: parseNumber(b, 116, 8, "gid"),
    size: parseNumber(b, 124, 12, "size"),
    mtime: parseNumber(b, 136, 12, "mtime", true),
    type: String.fromCharCode(b[156]!),
    linkname: field(b, 157, 100),
    devmajor: parseNumber(b, 329, 8, "devmajor"),
    devminor: parseNumber(b, 337, 8, "devminor"),
  };
}
