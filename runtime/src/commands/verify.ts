import { storeLayout } from "../store/layout.ts";
import { verifyStore } from "../store/verify.ts";

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  const r = verifyStore(storeLayout(String(opts.sysroot)), args[0]);
  if (opts.json) process.stdout.write(JSON.stringify(r) + "\n");
  else {
    for (const p of r.problems) process.stdout.write(`${p.what}: ${p.problem}\n`);
    process.stderr.write(`verified ${r.imagesChecked} images and ${r.objectsChecked} objects of deployments [${r.deployments.join(", ")}]: ${r.problems.length} problems\n`);
  }
  if (r.problems.length > 0) throw new Error(`verification failed: ${r.problems.length} problem(s)`);
}
