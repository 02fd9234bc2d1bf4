// PE/COFF sections of a Unified Kernel Image: adding the UKI's sections (.osrel, .cmdline, .linux,
// .initrd) to systemd-stub, and reading one back. Pure: bytes in, bytes out (test/unit/pe.test.ts).
//
// Written here rather than run through `objcopy --add-section --change-section-vma` or ukify:
// objcopy needs each section's address worked out by hand anyway (after the stub's last section,
// aligned), bookworm's binutils mis-handles some newer stubs, and ukify is trixie-only Python.
// Adding sections to a PE image is small: the stub reserves room for extra section headers in its
// header area (systemd's elf2efi does so for ukify), the data goes at the end of the file.

/** Offsets inside the headers (Microsoft PE format, PE32+ optional header). */
const E_LFANEW = 0x3c;
const COFF_NUMBER_OF_SECTIONS = 2;
const COFF_SIZE_OF_OPTIONAL_HEADER = 16;
const COFF_HEADER_SIZE = 20;
const OPT_MAGIC_PE32_PLUS = 0x20b;
const OPT_SIZE_OF_INITIALIZED_DATA = 8;
const OPT_SECTION_ALIGNMENT = 32;
const OPT_FILE_ALIGNMENT = 36;
const OPT_SIZE_OF_IMAGE = 56;
const OPT_SIZE_OF_HEADERS = 60;
const OPT_CHECKSUM = 64;
/** Data directory 4 (the certificate table, i.e. an Authenticode signature) of PE32+. */
const OPT_CERT_TABLE = 112 + 4 * 8;
const SECTION_HEADER_SIZE = 40;
/** IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ: what ukify gives the UKI's sections. */
const DATA_READONLY = 0x40000040;

export interface PeSection {
  name: string;
  virtualAddress: number;
  virtualSize: number;
  rawOffset: number;
  rawSize: number;
}

interface Headers {
  coff: number;
  opt: number;
  sectionTable: number;
  sections: PeSection[];
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

function headers(pe: Buffer, what: string): Headers {
  if (pe.length < 0x40 || pe.toString("latin1", 0, 2) !== "MZ") throw new Error(`${what}: not a PE image (no MZ header)`);
  const sig = pe.readUInt32LE(E_LFANEW);
  if (sig + 24 > pe.length || pe.toString("latin1", sig, sig + 4) !== "PE\0\0") throw new Error(`${what}: not a PE image (no PE signature)`);
  const coff = sig + 4;
  const opt = coff + COFF_HEADER_SIZE;
  if (pe.readUInt16LE(opt) !== OPT_MAGIC_PE32_PLUS) throw new Error(`${what}: not a PE32+ image`);
  const sectionTable = opt + pe.readUInt16LE(coff + COFF_SIZE_OF_OPTIONAL_HEADER);
  const n = pe.readUInt16LE(coff + COFF_NUMBER_OF_SECTIONS);
  const sections: PeSection[] = [];
  for (let i = 0; i < n; i++) {
    const h = sectionTable + i * SECTION_HEADER_SIZE;
    if (h + SECTION_HEADER_SIZE > pe.length) throw new Error(`${what}: section table truncated`);
    sections.push({
      name: pe.toString("latin1", h, h + 8).replace(/\0+$/, ""),
      virtualSize: pe.readUInt32LE(h + 8),
      virtualAddress: pe.readUInt32LE(h + 12),
      rawSize: pe.readUInt32LE(h + 16),
      rawOffset: pe.readUInt32LE(h + 20),
    });
  }
  return { coff, opt, sectionTable, sections };
}

export function peSections(pe: Buffer, what = "PE image"): PeSection[] {
  return headers(pe, what).sections;
}

/** The contents of section `name` (its virtual size, which is the real length), or undefined. */
export function readSection(pe: Buffer, name: string, what = "PE image"): Buffer | undefined {
  const s = headers(pe, what).sections.find((x) => x.name === name);
  if (!s) return undefined;
  if (s.rawOffset + Math.min(s.rawSize, s.virtualSize) > pe.length) throw new Error(`${what}: section ${name} runs past the end of the file`);
  return pe.subarray(s.rawOffset, s.rawOffset + Math.min(s.rawSize, s.virtualSize));
}

/**
 * `stub` with `add` appended as read-only data sections, in order, each at the next aligned
 * address after the last one. The stub must be unsigned (a signature would no longer cover the
 * file) and carry none of the names already.
 */
export function addSections(stub: Buffer, add: ReadonlyArray<{ name: string; data: Buffer }>, what = "stub"): Buffer {
  const h = headers(stub, what);
  if (stub.readUInt32LE(h.opt + OPT_CERT_TABLE + 4) !== 0) throw new Error(`${what}: already signed; sections must be added to an unsigned stub`);
  for (const a of add) {
    if (a.name.length > 8) throw new Error(`section name ${a.name}: longer than 8 bytes`);
    if (h.sections.some((s) => s.name === a.name)) throw new Error(`${what}: already has a ${a.name} section`);
  }
  const sectionAlign = stub.readUInt32LE(h.opt + OPT_SECTION_ALIGNMENT);
  const fileAlign = stub.readUInt32LE(h.opt + OPT_FILE_ALIGNMENT);
  const sizeOfHeaders = stub.readUInt32LE(h.opt + OPT_SIZE_OF_HEADERS);
  const tableEnd = h.sectionTable + (h.sections.length + add.length) * SECTION_HEADER_SIZE;
  const firstRaw = Math.min(...h.sections.map((s) => (s.rawSize ? s.rawOffset : Infinity)));
  if (tableEnd > sizeOfHeaders || tableEnd > firstRaw) throw new Error(`${what}: no room in the PE header for ${add.length} more section headers`);

  let va = alignUp(Math.max(...h.sections.map((s) => s.virtualAddress + Math.max(s.virtualSize, s.rawSize))), sectionAlign);
  // Whatever follows the last section's data (debug data, an old certificate) is dropped.
  let raw = alignUp(Math.max(...h.sections.map((s) => s.rawOffset + s.rawSize)), fileAlign);
  const out: Buffer[] = [];
  const head = Buffer.alloc(raw);
  stub.copy(head, 0, 0, Math.min(raw, stub.length));
  out.push(head);
  let initialized = head.readUInt32LE(h.opt + OPT_SIZE_OF_INITIALIZED_DATA);
  add.forEach((a, i) => {
    const rawSize = alignUp(a.data.length, fileAlign);
    const e = h.sectionTable + (h.sections.length + i) * SECTION_HEADER_SIZE;
    head.fill(0, e, e + SECTION_HEADER_SIZE);
    head.write(a.name, e, 8, "latin1");
    head.writeUInt32LE(a.data.length, e + 8);
    head.writeUInt32LE(va, e + 12);
    head.writeUInt32LE(rawSize, e + 16);
    head.writeUInt32LE(raw, e + 20);
    head.writeUInt32LE(DATA_READONLY, e + 36);
    const padded = Buffer.alloc(rawSize);
    a.data.copy(padded);
    out.push(padded);
    initialized += rawSize;
    raw += rawSize;
    va = alignUp(va + a.data.length, sectionAlign);
  });
  head.writeUInt16LE(h.sections.length + add.length, h.coff + COFF_NUMBER_OF_SECTIONS);
  head.writeUInt32LE(initialized >>> 0, h.opt + OPT_SIZE_OF_INITIALIZED_DATA);
  head.writeUInt32LE(va, h.opt + OPT_SIZE_OF_IMAGE);
  // The checksum is not checked by UEFI; zero says "not computed" rather than a stale value.
  head.writeUInt32LE(0, h.opt + OPT_CHECKSUM);
  return Buffer.concat(out);
}
