import { UsageError } from "../cli.ts";
import { createKeys } from "../seal/keys.ts";

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  if (args[0] !== "create" || !args[1]) throw new UsageError("usage: particle keys create DIR");
  await createKeys(args[1], String(opts.name), (m) => process.stderr.write(`particle: ${m}\n`));
  process.stderr.write(`particle: owner keys in ${args[1]} (PK, KEK, db; .auth files for enrollment). Keep the .key files off the machines.\n`);
}
