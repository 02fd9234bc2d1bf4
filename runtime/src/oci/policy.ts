// Signature policy from the command line. Verification is on unless turned off by name, and
// turning it off is said loudly every time.
import { resolve } from "node:path";
import type { Policy } from "./skopeo.ts";

export const INSECURE_FLAG = "--insecure-no-verify-signatures";

/** Pure: --signature-policy FILE / --insecure-no-verify-signatures → the policy skopeo applies. */
export function policyFromOptions(opts: { signaturePolicy?: unknown; insecureNoVerifySignatures?: unknown }): Policy {
  const file = opts.signaturePolicy;
  if (opts.insecureNoVerifySignatures) {
    if (file !== undefined) throw new Error(`--signature-policy and ${INSECURE_FLAG} contradict each other; pass one`);
    return { kind: "insecure" };
  }
  if (file !== undefined && file !== true) return { kind: "file", path: resolve(String(file)) };
  return { kind: "system" };
}

export const INSECURE_WARNING = [
  "",
  "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
  `!! WARNING: ${INSECURE_FLAG}: image signatures are NOT verified.`,
  "!! Anyone who can alter the image or its transport can choose what this machine boots.",
  "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
  "",
].join("\n");
