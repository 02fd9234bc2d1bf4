// particle.var=luks: /var on the LUKS2 partition labelled particle-var, whose key the TPM releases
// only while PCR 11 holds a value the owner signed (a sealed UKI, inside its initramfs). The first
// boot finds the partition blank and makes the volume: format, enroll the TPM2 token for the
// UKI's public key (no literal PCRs, so updates keep unlocking), drop the one-time key, make the
// filesystem, as systemd-repart's Encrypt=tpm2 does. It starts empty, as the root partition's /var
// directory does on a first boot (systemd-tmpfiles fills it), so the two layouts agree. Every boot
// then unlocks it through the token. These are the only programs particle-boot runs: LUKS and
// the TPM have no syscall interface, and cryptsetup is what reads the header every later boot.
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { nodeCrypto } from "../../runtime/src/system/node-crypto.ts";
import { join } from "node:path";
import { VAR_LABEL } from "../../runtime/src/install/disk.ts";
import { mount } from "../../runtime/src/system/libc.ts";
import { planVarLuks, VAR_HEAD_BYTES } from "./var-luks-plan.ts";
import { waitForDevice } from "./steps.ts";

export const VAR_DEVICE = `/dev/disk/by-partlabel/${VAR_LABEL}`;
export const VAR_MAPPING = "particle-var";
/** Where systemd-stub leaves the UKI's .pcrpkey and .pcrsig in the initramfs. */
export const PCR_PUBLIC_KEY = "/.extra/tpm2-pcr-public-key.pem";
export const PCR_SIGNATURE = "/.extra/tpm2-pcr-signature.json";
const SYSTEMD_CRYPTSETUP = "/usr/lib/systemd/systemd-cryptsetup";
/** udev names the partition shortly after the disk appears; the TPM2 unseal itself is quick. */
const DEVICE_TIMEOUT_S = 60;

function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (r.error) throw new Error(`particle.var=luks: ${what}: ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const out = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-6).join("; ");
    throw new Error(`particle.var=luks: ${what} failed (${cmd} exit ${r.status ?? r.signal}): ${out}`);
  }
}

function readHead(dev: string): Buffer {
  const fd = openSync(dev, "r");
  try {
    const buf = Buffer.alloc(VAR_HEAD_BYTES);
    let n = 0;
    while (n < buf.length) {
      const got = readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function attach(dev: string): void {
  const opts = ["tpm2-device=auto", "headless=true", ...(existsSync(PCR_SIGNATURE) ? [`tpm2-signature=${PCR_SIGNATURE}`] : [])];
  run(SYSTEMD_CRYPTSETUP, ["attach", VAR_MAPPING, dev, "-", opts.join(",")], `unlocking ${dev} with the TPM2`);
}

function provision(dev: string, ws: string): void {
  if (!existsSync(PCR_PUBLIC_KEY)) {
    throw new Error(`particle.var=luks: ${PCR_PUBLIC_KEY} is missing: this UKI was sealed without the TPM2 PCR key (.pcrpkey), so no policy can be enrolled`);
  }
  // The one-time key lives only in the workspace tmpfs and is wiped from the header below.
  const key = join(ws, "var-luks.key");
  writeFileSync(key, nodeCrypto().randomBytes(64), { mode: 0o600 });
  try {
    // PBKDF2 at its minimum: the key is 512 random bits and lives for seconds.
    run("cryptsetup", ["luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
      "--label", VAR_LABEL, "--key-file", key, dev], `formatting ${dev}`);
    run("systemd-cryptenroll", [`--unlock-key-file=${key}`, "--tpm2-device=auto", `--tpm2-public-key=${PCR_PUBLIC_KEY}`,
      "--tpm2-public-key-pcrs=11", "--tpm2-pcrs=", "--wipe-slot=password", dev], `enrolling the TPM2 for ${dev}`);
  } finally {
    rmSync(key, { force: true });
  }
}

/** Unlocks (first: makes) the /var volume and mounts it under the workspace; returns the directory to bind as /var. */
export function openVarLuks(ws: string, log: (m: string) => void): { dir: string; provisioned: boolean } {
  const t0 = Date.now();
  waitForDevice(VAR_DEVICE, DEVICE_TIMEOUT_S, "particle.var=luks");
  const plan = planVarLuks(readHead(VAR_DEVICE), VAR_DEVICE);
  if (plan.kind === "refuse") throw new Error(plan.why);
  if (plan.kind === "provision") provision(VAR_DEVICE, ws);
  attach(VAR_DEVICE);
  const mapped = `/dev/mapper/${VAR_MAPPING}`;
  if (plan.kind === "provision") run("mkfs.ext4", ["-q", "-L", VAR_LABEL, mapped], `making the filesystem on ${mapped}`);
  const dir = join(ws, "var-luks");
  mkdirSync(dir, { recursive: true });
  mount(mapped, dir, "ext4", 0, null);
  log(`/var: ${VAR_DEVICE} ${plan.kind === "provision" ? "formatted (LUKS2), TPM2 enrolled and unlocked" : "unlocked with the TPM2"} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { dir, provisioned: plan.kind === "provision" };
}
