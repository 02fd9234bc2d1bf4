// Pure: skopeo's stderr from a failed copy → what really happened, in words that name the image.

/** skopeo's own words: the msg="…" of its fatal log line when it has one, else its last lines. */
export function skopeoReason(stderr: string): string {
  const m = /level=fatal msg="((?:[^"\\]|\\.)*)"/.exec(stderr);
  if (!m) return stderr;
  try { return JSON.parse(`"${m[1]}"`) as string; } catch { return m[1]!; }
}

/**
 * Pure: what a failed copy means. Only the policy's own verdict ("Source image rejected", which
 * covers a missing signature, another key and a manifest that no longer matches its signature) is
 * a refusal; a registry that cannot be reached or a signature store that cannot be read is said as such.
 */
export function explainCopyFailure(ref: string, transport: string, policy: string, stderr: string): string {
  const reason = skopeoReason(stderr);
  if (/Source image rejected|rejected by policy|policy requirement/.test(stderr)) {
    return `image ${ref} refused by the signature policy ${policy}: ${reason.replace(/^Source image rejected: /, "")}`;
  }
  if (/[Uu]nknown transport|[Ii]nvalid transport/.test(stderr)) return `image ${ref}: this skopeo has no ${transport} transport`;
  if (/[Ss]ignature/.test(stderr)) return `image ${ref}: reading or storing its signatures failed (not a policy verdict): ${reason}`;
  return `fetching image ${ref}: ${reason}`;
}
