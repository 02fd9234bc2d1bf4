// The 128-byte superblock at offset 1024. Everything host- or time-dependent (UUID, volume name,
// checksum) is zero so that the same tree always gives the same bytes.
import { BLOCK_BITS, MAGIC, SUPER_OFFSET, SUPER_SIZE } from "./format.ts";

export interface SuperFields {
  rootNid: number;
  inos: number;
  buildTimeSec: number;
  buildTimeNsec: number;
  blocks: number;
  metaBlkaddr: number;
  xattrBlkaddr: number;
  featureIncompat: number;
}

export function writeSuperblock(buf: Buffer, base: number, f: SuperFields): void {
  const o = base + SUPER_OFFSET;
  buf.fill(0, o, o + SUPER_SIZE);
  if (f.rootNid > 0xffff) throw new Error(`root nid ${f.rootNid} does not fit the superblock's 16 bits`);
  buf.writeUInt32LE(MAGIC, o);
  buf[o + 12] = BLOCK_BITS;
  buf.writeUInt16LE(f.rootNid, o + 14);
  buf.writeBigUInt64LE(BigInt(f.inos), o + 16);
  buf.writeBigInt64LE(BigInt(f.buildTimeSec), o + 24);
  buf.writeUInt32LE(f.buildTimeNsec, o + 32);
  buf.writeUInt32LE(f.blocks, o + 36);
  buf.writeUInt32LE(f.metaBlkaddr, o + 40);
  buf.writeUInt32LE(f.xattrBlkaddr, o + 44);
  buf.writeUInt32LE(f.featureIncompat, o + 80);
}
