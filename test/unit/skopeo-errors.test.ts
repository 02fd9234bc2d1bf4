import { describe, expect, it } from "vitest";
import { explainCopyFailure, skopeoReason } from "../../runtime/src/oci/skopeo-errors.ts";

const fatal = (msg: string) => `time="2026-12-01T11:16:53Z" level=fatal msg=${JSON.stringify(msg)}\n`;
const REF = "docker://127.0.0.1:5000/os:v1";
const POL = "/etc/containers/policy.json";

describe("explainCopyFailure", () => {
  it("takes skopeo's message out of its log line, quotes unescaped", () => {
    expect(skopeoReason(fatal('Invalid GPG signature: gpgme.Signature{Fingerprint:"0B50"}'))).toBe('Invalid GPG signature: gpgme.Signature{Fingerprint:"0B50"}');
    expect(skopeoReason("plain words\n")).toBe("plain words\n");
  });

  it.each([
    ["no signature", "A signature was required, but no signature exists"],
    ["another key", "Invalid GPG signature: gpgme.Signature{Summary:128}"],
    ["changed manifest", "Signature for digest sha256:22a2 does not match"],
    ["reject policy", "Running image docker://x is rejected by policy."],
  ])("a policy verdict (%s) is a refusal naming the image, the policy and the reason", (_, reason) => {
    expect(explainCopyFailure(REF, "docker", POL, fatal(`Source image rejected: ${reason}`))).toBe(`image ${REF} refused by the signature policy ${POL}: ${reason}`);
  });

  it("a signature that cannot be stored is not called a refusal", () => {
    const m = explainCopyFailure(REF, "docker", POL, fatal("Can not copy signatures to oci:/c:t: Pushing signatures for OCI images is not supported"));
    expect(m).not.toContain("refused");
    expect(m).toBe(`image ${REF}: reading or storing its signatures failed (not a policy verdict): Can not copy signatures to oci:/c:t: Pushing signatures for OCI images is not supported`);
  });

  it("an unreachable registry is a fetch failure", () => {
    const m = explainCopyFailure(REF, "docker", POL, fatal('pinging container registry 127.0.0.1:5000: Get "http://127.0.0.1:5000/v2/": connect: connection refused'));
    expect(m).toBe(`fetching image ${REF}: pinging container registry 127.0.0.1:5000: Get "http://127.0.0.1:5000/v2/": connect: connection refused`);
  });

  it("a registry gone mid-download says so, and that the whole blobs are kept", () => {
    const m = explainCopyFailure(REF, "docker", POL, fatal("writing blob: happened during read: unexpected EOF"));
    expect(m).toBe(`fetching image ${REF}: the registry's connection ended in the middle of a download (writing blob: happened during read: unexpected EOF); nothing was staged, and the blobs that arrived whole are kept for the next attempt`);
  });

  it("an unknown transport says so", () => {
    expect(explainCopyFailure("foo:x", "foo", POL, fatal('Invalid image name "foo:x", unknown transport "foo"'))).toBe("image foo:x: this skopeo has no foo transport");
  });
});
