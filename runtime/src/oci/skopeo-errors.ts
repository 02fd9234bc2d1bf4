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
  // The connection ended inside a blob: the blobs that were complete stay in the layout cache, so
  // the user should know that trying again costs only the rest.
  if (/unexpected EOF|connection reset by peer|broken pipe/.test(reason)) {
    return `fetching image ${ref}: the registry's connection ended in the middle of a download (${reason}); nothing was staged, and the blobs that arrived whole are kept for the next attempt`;
  }
  return `fetching image ${ref}: ${reason}`;
}
