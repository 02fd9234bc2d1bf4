// Little-endian stores into the image buffer. A DataView and short JS copies avoid what Node's Buffer
// methods cost per call (argument checks, a view allocated per partial copy, BigInts for 64-bit).
export const view = (b: Buffer): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** A safe integer (negative too: pre-1970 mtimes) as a 64-bit two's complement value. */
export function put64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / 0x100000000) >>> 0, true);
}

/** Copies src[from, to) to dst at off. */
export function putBytes(dst: Uint8Array, off: number, src: Uint8Array, from = 0, to = src.length): void {
  const n = to - from;
  if (n > 64) dst.set(src.subarray(from, to), off);
  else for (let i = 0; i < n; i++) dst[off + i] = src[from + i]!;
}
