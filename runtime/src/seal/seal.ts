// `particle seal`: the image build's step. The image digest is computed from the source alone by
// staging it into a scratch store (the EROFS image is reproducible, so any machine that stages the
// same source gets the same digest; test/host/seal.test.ts checks it), then the UKI pinning that
// digest is built from the staged tree and signed. The scratch store is thrown away.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RootFormat } from "../manifest.ts";
import { stage } from "../store/stage.ts";
import { withDeploymentMounted } from "../deployments/mounted.ts";
import { signingKey } from "./keys.ts";
import { sealTree, type SealResult } from "./build.ts";

export interface SealOptions {
  source: string;
  keys: string;
  initramfs: string;
  out: string;
  format: RootFormat;
  version?: string;
  kargs: string[];
  stub?: string;
  log: (m: string) => void;
}

export async function seal(o: SealOptions): Promise<SealResult & { imageDigest: string; version: string }> {
  const keys = signingKey(o.keys);
  const work = mkdtempSync(join(tmpdir(), "particle-seal-store-"));
  try {
    const sysroot = join(work, "sysroot");
    mkdirSync(sysroot);
    const r = await stage({ sysroot, source: o.source, format: o.format, version: o.version, log: o.log });
    o.log(`image digest ${r.imageDigest}`);
    const version = o.version ?? r.imageDigest.slice(0, 12);
    const mnt = join(sysroot, "particle/tmp/seal-mnt");
    mkdirSync(mnt, { recursive: true });
    const res = await withDeploymentMounted(sysroot, r.id, mnt, (tree) =>
      sealTree({ tree, imageDigest: r.imageDigest, initrd: o.initramfs, keys, version, kargs: o.kargs, stub: o.stub, out: o.out }), o.log);
    return { ...res, imageDigest: r.imageDigest, version };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
