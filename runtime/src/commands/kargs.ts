import { setOptions } from "../bls/entry.ts";
import { appendArg, argKey, joinCmdline, removeArg, splitCmdline } from "../bls/kargs.ts";
import { particleEntries, readEntries, rewriteEntry } from "../bootloader/entries.ts";
import { readStatus } from "../deployments/read.ts";
import { requireEsp, resolveWhere } from "../deployments/where.ts";
import { UsageError } from "../cli.ts";
import { acquireLock } from "../store/lock.ts";
import { storeLayout } from "../store/layout.ts";

/** Arguments that tie an entry to its deployment; editing them would boot something else or nothing. */
const PROTECTED = new Set(["root", "particle.deploy", "particle.image"].map(argKey));

const SEALED_KARGS = "the kernel command line is sealed: it is part of the signed UKI (EFI/Linux), so it cannot be edited here. " +
  "To change it, re-seal on the build host that holds the keys: particle seal SOURCE --keys DIR --karg ARG … --out NEW.efi, " +
  "then particle stage SOURCE --uki NEW.efi on this machine.";

const list = (v: unknown): string[] => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String));

/** Pure: the new argument list after --delete then --append. */
export function editKargs(current: readonly string[], append: readonly string[], del: readonly string[]): string[] {
  for (const a of [...append, ...del]) {
    if (PROTECTED.has(argKey(a))) throw new UsageError(`${a}: ${argKey(a)}= is set by particle and cannot be edited`);
  }
  let args = [...current];
  for (const d of del) args = removeArg(args, d);
  for (const a of append) args = appendArg(args, a);
  return args;
}

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  const w = resolveWhere(opts);
  const esp = requireEsp(w);
  const host = readStatus(w);
  if (host.status.bootloader.sealed) throw new Error(SEALED_KARGS);
  const id = args[0] ?? host.spec.defaultDeployment ?? host.status.booted?.id;
  if (!id) throw new UsageError("no deployment given and none is the default; see particle status");
  const e = particleEntries(readEntries(esp)).find((x) => x.deployId === id);
  if (!e) throw new Error(`deployment ${id} has no boot entry in ${esp}`);
  const append = list(opts.append);
  const del = list(opts.delete);
  const current = splitCmdline(e.options);
  if (append.length || del.length) {
    const next = editKargs(current, append, del);
    const lock = acquireLock(storeLayout(w.sysroot).lock, "kargs", (m) => process.stderr.write(`particle: ${m}\n`));
    try {
      rewriteEntry(esp, e, setOptions(e.entry, joinCmdline(next)));
    } finally {
      lock.release();
    }
    process.stdout.write(joinCmdline(next) + "\n");
  } else process.stdout.write(joinCmdline(current) + "\n");
}
