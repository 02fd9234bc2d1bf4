// /run/particle-booted: what particle-boot mounted, for `particle status` and for tests. Its
// presence also tells the running system that it was booted as a Particle-OS deployment.
import * as z from "zod/mini";
import { lazySchema } from "../../runtime/src/mounts/lazy-schema.ts";
import { DeploymentId, RootFormat, Sha256Hex } from "../../runtime/src/manifest.ts";
import { OverlayVerity, VerityMode } from "../../runtime/src/mounts/plan.ts";

export const BOOTED_MARKER = "particle-booted";

// particle-boot writes it from typed values and never builds the schema (see lazy-schema.ts);
// readers such as `particle status` validate with bootedMarkerSchema().parse(…).
export const bootedMarkerSchema = lazySchema(() => z.object({
  schema: z.literal(1),
  id: DeploymentId,
  imageDigest: Sha256Hex,
  format: RootFormat,
  /** The verity mode in force (after the default was applied). */
  verity: VerityMode,
  /** The overlayfs verity= option used for the root (`off` for erofs/squashfs roots). */
  overlayVerity: OverlayVerity,
  /** How the image digest was checked: by the kernel, in userspace, or sha256 (squashfs). */
  imageCheck: z.enum(["fs-verity", "userspace-fs-verity", "sha256"]),
  /** Objects that got fs-verity enabled during this boot (sealing after an offline install). */
  sealed: z.int().check(z.gte(0)),
  overlayroot: z.enum(["disabled", "tmpfs", "device"]),
  /** particle.etc=transient: /etc had a tmpfs upper (absent: the deployment's upper on disk). */
  etc: z.optional(z.literal("transient")),
  /** particle.var=luks: /var was the TPM2-unlocked LUKS2 partition; `provisioned` on the boot
   *  that formatted and enrolled it. Absent: the shared /var directory on the physical root. */
  var: z.optional(z.enum(["luks", "luks-provisioned"])),
  warnings: z.array(z.string()),
}));
export type BootedMarker = z.infer<ReturnType<typeof bootedMarkerSchema>>;
