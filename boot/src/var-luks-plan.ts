// particle.var=luks: what the /var partition's first bytes say to do with it. Pure (bytes in, a
// decision out), so every case is a unit test; boot/src/var-luks.ts carries it out.
//
// The partition is what install left (zeros), what an earlier boot made (LUKS2 with the TPM2
// token), or something else. Only the first two are used: a plaintext filesystem there is what
// someone with the disk in hand would plant, so it is refused rather than mounted or overwritten.

/** How much of the partition the decision reads. Install zeroes at least this much. */
export const VAR_HEAD_BYTES = 64 * 1024;

const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]); // "LUKS\xba\xbe"
const EXT_MAGIC_OFFSET = 1024 + 56;

export type VarLuksPlan =
  | { kind: "unlock" }
  /** Blank: format LUKS2, enroll the TPM2 token for the signed policy, make the (empty) filesystem. */
  | { kind: "provision" }
  | { kind: "refuse"; why: string };

function describe(head: Buffer): string {
  if (head.length >= EXT_MAGIC_OFFSET + 2 && head.readUInt16LE(EXT_MAGIC_OFFSET) === 0xef53) return "an ext2/3/4 filesystem";
  const fat = head.length >= 512 && head[510] === 0x55 && head[511] === 0xaa &&
    (head.subarray(54, 57).toString("latin1") === "FAT" || head.subarray(82, 87).toString("latin1") === "FAT32");
  if (fat) return "a FAT filesystem";
  if (head.subarray(0, 4).toString("latin1") === "XFSB") return "an XFS filesystem";
  if (head.subarray(1024, 1028).equals(Buffer.from([0xe2, 0xe1, 0xf5, 0xe0]))) return "an EROFS image";
  return "unrecognised data";
}

/** `head`: the first VAR_HEAD_BYTES of the partition (fewer only if the partition is smaller). */
export function planVarLuks(head: Buffer, device: string): VarLuksPlan {
  if (head.subarray(0, 6).equals(LUKS_MAGIC)) {
    const version = head.length >= 8 ? head.readUInt16BE(6) : 0;
    if (version === 2) return { kind: "unlock" };
    return { kind: "refuse", why: `particle.var=luks: ${device} is a LUKS${version} volume; only LUKS2 holds a TPM2 token (refusing it)` };
  }
  if (head.length > 0 && head.every((b) => b === 0)) return { kind: "provision" };
  if (head.length === 0) return { kind: "refuse", why: `particle.var=luks: ${device} is empty (0 bytes)` };
  return {
    kind: "refuse",
    why: `particle.var=luks: ${device} holds ${describe(head)}, not a LUKS2 volume; a plaintext /var is refused (only a partition install left blank is formatted)`,
  };
}
