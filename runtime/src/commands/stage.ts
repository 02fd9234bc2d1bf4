import { FormatRequest } from "../kernel/format-choice.ts";
import { stage } from "../store/stage.ts";
import { UsageError } from "../cli.ts";
import { stageBootTarget } from "../deployments/where.ts";
import { bootStaged, carryEtcForSealed, precheckEsp } from "../deployments/make-bootable.ts";
import { policyFromOptions } from "../oci/policy.ts";
import { acquireLock, type StoreLock } from "../store/lock.ts";
import { storeLayout } from "../store/layout.ts";
import { mkdirSync } from "node:fs";
import { checkPin, installUki, isSealedEsp, readUki, type UkiFile } from "../seal/stage-sealed.ts";

function sealedUki(opts: Record<string, any>): UkiFile {
  if (!opts.uki) throw new UsageError("this machine is sealed: particle stage needs --uki FILE, a signed UKI from particle seal that pins this image's digest");
  return readUki(String(opts.uki));
}

/** Resolves to the new deployment's id (upgrade records it). */
export default async function (args: string[], opts: Record<string, any>): Promise<string> {
  const format = FormatRequest.safeParse(opts.format);
  if (!format.success) throw new UsageError(`--format ${opts.format}: expected auto, composefs, erofs or squashfs`);
  const log = (m: string) => process.stderr.write(`particle: ${m}\n`);
  // On a booted system (or with --esp) the deployment also gets its boot entry; check the ESP
  // has room before anything is written, so a full ESP fails before the store changes.
  const boot = stageBootTarget(opts);
  const sealed = boot && isSealedEsp(boot.esp) ? sealedUki(opts) : undefined;
  if (boot && !sealed) {
    const e = precheckEsp(boot.esp, boot.bootedId);
    if (e) throw e;
  }
  const started = performance.now();
  // One hold of the store lock from staging to the boot entry: between the two, a cleanup (say, by
  // hand while the upgrade timer runs) would see a deployment that nothing boots and remove it.
  const sysroot = String(opts.sysroot);
  let lock: StoreLock | undefined;
  if (boot) {
    mkdirSync(storeLayout(sysroot).root, { recursive: true });
    lock = acquireLock(storeLayout(sysroot).lock, `stage ${args[0]}`, log);
  }
  try {
    return await stageAndBoot(args[0]!, opts, format.data, boot, sealed, started, log);
  } finally {
    lock?.release();
  }
}

async function stageAndBoot(source: string, opts: Record<string, any>, format: FormatRequest, boot: ReturnType<typeof stageBootTarget>, sealed: UkiFile | undefined, started: number, log: (m: string) => void): Promise<string> {
  const r = await stage({
    sysroot: String(opts.sysroot),
    source,
    format,
    version: opts.version === undefined ? undefined : String(opts.version),
    log,
    policy: policyFromOptions(opts),
    progressOut: process.stderr,
    consume: opts.consume === true,
    requireKernel: boot !== undefined,
  });
  let entry: string | undefined;
  if (boot && sealed) {
    checkPin(sealed, String(opts.sysroot), r.id, r.imageDigest);
    await carryEtcForSealed({ sysroot: String(opts.sysroot), bootedId: boot.bootedId, id: r.id, log });
    entry = installUki(boot.esp, sealed, r.imageDigest);
  } else if (boot) entry = await bootStaged({ ...boot, id: r.id, log });
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ...r, entry, seconds: Number(((performance.now() - started) / 1000).toFixed(3)) }) + "\n");
  } else {
    process.stderr.write(`staged deployment ${r.id} (${r.format}, image ${r.imageDigest.slice(0, 12)}…): ${r.objectsAdded} new objects, ${r.bytesAdded} bytes added${entry ? `; boot entry ${entry} is the next default` : ""}\n`);
    process.stdout.write(`${r.id}\n`);
  }
  return r.id;
}
