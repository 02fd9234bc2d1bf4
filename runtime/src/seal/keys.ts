// The owner's Secure Boot keys: PK (owns the machine), KEK (may change db), db (signs what boots),
// made with openssl, and the signed EFI signature lists (.auth) that firmware enrollment takes
// (systemd-boot's secure-boot-enroll, or any firmware setup screen). They belong on a build host:
// only db.key is needed to seal, and none of it goes to the machine but the public .auth files.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { run } from "../system/exec.ts";

export const KEY_NAMES = ["PK", "KEK", "db"] as const;
/** The signature lists' owner GUID; any fixed value does, it only labels the entries. */
export const OWNER_GUID = "6a8e9c43-2b7d-4d62-9f5e-70617274696c";
/** Files sealing needs from a key directory. */
export const SIGNING_FILES = ["db.key", "db.crt"] as const;
export const AUTH_FILES = KEY_NAMES.map((k) => `${k}.auth`);
/** The PCR 11 policy key (docs/sealed-boot.md, /var on LUKS): what may read /var, apart from db,
 *  which decides what may run. The public half is what a machine's LUKS token is enrolled for. */
export const PCR_PRIVATE = "tpm2-pcr-private.pem";
export const PCR_PUBLIC = "tpm2-pcr-public.pem";

export interface KeyDir {
  dir: string;
  key: string;
  cert: string;
  /** PCR_PRIVATE, when the directory has one (made by newer `particle keys create`). */
  pcrKey?: string;
}

/** The signing key of `dir`, with a clear error when it is not a key directory. */
export function signingKey(dir: string): KeyDir {
  for (const f of SIGNING_FILES) {
    if (!existsSync(join(dir, f))) throw new Error(`${dir}: not a key directory (no ${f}; make one with particle keys create ${dir})`);
  }
  const pcr = join(dir, PCR_PRIVATE);
  return { dir, key: join(dir, "db.key"), cert: join(dir, "db.crt"), ...(existsSync(pcr) ? { pcrKey: pcr } : {}) };
}

export async function createKeys(dir: string, commonName: string, log: (m: string) => void): Promise<void> {
  if (existsSync(dir) && readdirSync(dir).length) throw new Error(`${dir}: not empty; refusing to overwrite an owner's keys`);
  // Made beside the target and renamed into place: a failure leaves no half key directory.
  mkdirSync(dirname(resolve(dir)), { recursive: true });
  const work = mkdtempSync(`${resolve(dir)}.tmp-`);
  try {
    await makeKeys(work, commonName, log);
    if (existsSync(dir)) rmdirSync(dir);
    renameSync(work, dir);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

async function makeKeys(dir: string, commonName: string, log: (m: string) => void): Promise<void> {
  const p = (f: string) => join(dir, f);
  // Each list is signed by the key above it; PK signs itself. The timestamp is fixed so the same
  // keys give the same .auth files.
  const signer: Record<string, string> = { PK: "PK", KEK: "PK", db: "KEK" };
  for (const k of KEY_NAMES) {
    log(`creating ${k}`);
    await run("openssl", ["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
      "-subj", `/CN=${commonName} ${k}/`, "-keyout", p(`${k}.key`), "-out", p(`${k}.crt`)]);
    await run("openssl", ["x509", "-in", p(`${k}.crt`), "-outform", "DER", "-out", p(`${k}.cer`)]);
    await run("cert-to-efi-sig-list", ["-g", OWNER_GUID, p(`${k}.crt`), p(`${k}.esl`)]);
    const s = signer[k]!;
    await run("sign-efi-sig-list", ["-t", "2026-01-01 00:00:00", "-g", OWNER_GUID, "-k", p(`${s}.key`), "-c", p(`${s}.crt`), k, p(`${k}.esl`), p(`${k}.auth`)]);
  }
  log("creating the PCR 11 policy key");
  // RSA 2048: what every TPM 2.0 can load to check a PolicyAuthorize signature.
  await run("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p(PCR_PRIVATE)]);
  await run("openssl", ["pkey", "-in", p(PCR_PRIVATE), "-pubout", "-out", p(PCR_PUBLIC)]);
}
