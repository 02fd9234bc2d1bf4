// Pure: what `particle upgrade` should do, from the deployments on disk and the digest the
// tracked reference has now.
import type { Manifest } from "../manifest.ts";

export type UpgradePlan =
  | { action: "none"; reference: string; digest: string; reason: "current" | "staged"; stagedId?: string }
  | { action: "stage"; reference: string; from: string; to: string }
  | { action: "boot"; reference: string; digest: string; stagedId: string };

/** The deployment whose image reference is tracked: the booted one, or the one named with --from. */
export function trackedDeployment(manifests: readonly Manifest[], bootedId: string | undefined): Manifest & { oci: NonNullable<Manifest["oci"]> } {
  if (!bootedId) throw new Error("not booted from a particle deployment, so no image is tracked (name one with --from ID, or use particle switch IMAGE)");
  const m = manifests.find((x) => x.id === bootedId);
  if (!m) throw new Error(`deployment ${bootedId} is not in the store`);
  if (!m.oci) throw new Error(`deployment ${bootedId} was staged from ${m.source}, not from an image: nothing to upgrade (use particle switch IMAGE)`);
  return m as Manifest & { oci: NonNullable<Manifest["oci"]> };
}

const sameLayers = (a: readonly string[] | undefined, b: readonly string[] | undefined) => (a ?? []).join(" ") === (b ?? []).join(" ");

/**
 * `withEntry`: the deployments that have a boot entry, when upgrade writes entries (a booted system
 * or --esp). An update staged by an upgrade that was killed before its entry was written is then
 * made bootable instead of being reported as staged forever.
 */
export function planUpgrade(manifests: readonly Manifest[], bootedId: string | undefined, currentDigest: string, withEntry?: ReadonlySet<string>): UpgradePlan {
  const booted = trackedDeployment(manifests, bootedId);
  const reference = booted.oci.reference;
  if (booted.oci.sourceDigest === currentDigest) return { action: "none", reference, digest: currentDigest, reason: "current" };
  // Staged already (not booted yet): staging it twice would only add a duplicate deployment.
  const candidates = manifests.filter((m) => m.id !== booted.id && m.oci?.reference === reference && m.oci.sourceDigest === currentDigest && sameLayers(m.layered, booted.layered));
  const staged = candidates.find((m) => !withEntry || withEntry.has(m.id));
  if (staged) return { action: "none", reference, digest: currentDigest, reason: "staged", stagedId: staged.id };
  const unbooted = candidates.at(-1);
  if (unbooted) return { action: "boot", reference, digest: currentDigest, stagedId: unbooted.id };
  return { action: "stage", reference, from: booted.oci.sourceDigest, to: currentDigest };
}
