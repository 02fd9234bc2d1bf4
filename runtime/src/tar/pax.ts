// PAX extended header records: "<len> <key>=<value>\n", where len counts the whole record. Values
// are bytes: SCHILY.xattr.* values are binary (security.capability), so nothing is decoded as text
// until a key asks for it.
import { parseDecimalSeconds } from "../tree/time.ts";

export type PaxRecords = Map<string, Buffer>;

export function parsePax(body: Uint8Array): PaxRecords {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.length);
  const out: PaxRecords = new Map();
  let off = 0;
  while (off < buf.length) {
    // Trailing NUL padding ends the records.
    if (buf[off] === 0) break;
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) throw new Error(`pax header: record at byte ${off} has no length`);
    const lenText = buf.toString("latin1", off, sp);
    if (!/^\d+$/.test(lenText)) throw new Error(`pax header: bad record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = off + len;
    if (len <= sp - off + 1 || end > buf.length || buf[end - 1] !== 0x0a) throw new Error(`pax header: record at byte ${off} overruns or is not newline-terminated`);
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= end) throw new Error(`pax header: record at byte ${off} has no "="`);
    // Keys as latin1, which keeps every byte: an xattr name is bytes, and need not be UTF-8.
    out.set(buf.toString("latin1", sp + 1, eq), Buffer.from(buf.subarray(eq + 1, end - 1)));
    off = end;
  }
  return out;
}

/** "1700000000.123456789", "-1.5" → [seconds, nanoseconds], nanoseconds in [0, 1e9) (before 1970 too). */
export function parsePaxTime(v: string, what = "pax header"): [number, number] {
  let t: [number, number] | undefined;
  try {
    t = parseDecimalSeconds(v);
  } catch {
    // Beyond 2^53 the seconds would be stored rounded: refuse rather than invent a time.
    throw new Error(`${what}: PAX time ${JSON.stringify(v)} is out of range`);
  }
  if (!t) throw new Error(`${what}: bad time ${JSON.stringify(v)}`);
  return t;
}
