// Driver for luks-tpm2.sh: the UKI sections, PCR 11 prediction and .pcrsig that `particle seal`
// would write (runtime/src/seal/uki.ts, pcr11.ts) for the parts in DIR, printed as JSON with the
// digests the stub would extend PCR 11 with, so the script can replay them into swtpm.
// Usage: bun luks-tpm2-plan.ts DIR   (DIR holds stub, linux, osrel, cmdline, initrd, priv.pem;
// writes pcrsig.json, pcrpkey.pem and sbat, the stub's own measured section)
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ENTER_INITRD, MEASURED_SECTIONS, predictPcr11 } from "../../runtime/src/seal/pcr11.ts";
import { ukiSections } from "../../runtime/src/seal/uki.ts";
import { readSection } from "../../runtime/src/uki/pe.ts";

const dir = process.argv[2];
if (!dir) throw new Error("usage: luks-tpm2-plan.ts DIR");
const f = (n: string) => readFileSync(join(dir, n));
const sections = ukiSections({
  stub: f("stub"), kernel: f("linux"), initrd: f("initrd"), osRelease: f("osrel").toString(), cmdline: f("cmdline").toString(),
  pcrPrivateKey: f("priv.pem").toString(),
});
const sbat = readSection(f("stub"), ".sbat", "stub");
if (!sbat) throw new Error("the stub has no .sbat section");
writeFileSync(join(dir, "sbat"), sbat);
const measured = [{ name: ".sbat", data: sbat }, ...sections];
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const extends_: string[] = [];
for (const name of MEASURED_SECTIONS) {
  const s = measured.find((x) => x.name === name);
  if (!s) continue;
  extends_.push(sha(Buffer.from(`${name}\0`, "latin1")), sha(s.data));
}
for (const p of ENTER_INITRD) extends_.push(sha(p));
const pcrsig = sections.find((s) => s.name === ".pcrsig")!.data;
const pcrpkey = sections.find((s) => s.name === ".pcrpkey")!.data;
writeFileSync(join(dir, "pcrsig.json"), pcrsig);
writeFileSync(join(dir, "pcrpkey.pem"), pcrpkey);
console.log(JSON.stringify({ sections: sections.map((s) => s.name), pcr11: predictPcr11(measured).toString("hex"), extends: extends_, pol: JSON.parse(pcrsig.toString()).sha256[0].pol }));
