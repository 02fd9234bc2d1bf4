// The model of `particle status --json`, after bootc's Host/HostStatus: zod schemas are the types,
// and docs/status-schema.md documents the same fields. Changing a field here is an API change.
import { z } from "zod";
import { DeploymentId, OciOrigin, RootFormat, Sha256Hex, type Manifest } from "../manifest.ts";
import { predictDefault } from "../bls/loader-conf.ts";
import type { LoadedEntry } from "../bootloader/entries.ts";
import { getKey } from "../bls/entry.ts";
import { LastCheck } from "../auto/last-check.ts";
import { orderUkis, pinsImage, type UkiName } from "../seal/uki-order.ts";

export const API_VERSION = "particle-os.org/v1";

export const EtcConflict = z.object({
  /** Path under /etc (no leading slash). */
  path: z.string(),
  /** What the local change is ("file", "symlink", …) and what the new image has there ("dir"). */
  local: z.string(),
  image: z.string(),
  /** Where the local version was saved, relative to the sysroot. */
  savedAs: z.string(),
});
export type EtcConflict = z.infer<typeof EtcConflict>;

/** Written to particle/deploy/<to>/etc-carryover.json each time /etc is carried over to a deployment. */
export const EtcCarryOver = z.object({
  from: DeploymentId,
  to: DeploymentId,
  /** ISO 8601 time of the carry-over. */
  at: z.string(),
  /** "stage" (when it was staged) or "finalize" (at shutdown, the last word). */
  phase: z.enum(["stage", "finalize"]),
  /** Number of local changes (files, dirs, whiteouts) carried. */
  carried: z.number().int().nonnegative(),
  conflicts: z.array(EtcConflict),
});
export type EtcCarryOver = z.infer<typeof EtcCarryOver>;

export const BootEntryStatus = z.object({
  /** File name under loader/entries/, or EFI/Linux/ for a sealed UKI (with the boot counter, if any). */
  file: z.string(),
  /** systemd-boot's entry id: lower-cased file name without the counter. */
  id: z.string(),
  title: z.string().nullable(),
  /** Boot-order generation (the entry's `version`): the highest boots first. */
  generation: z.number().int().nullable(),
  /** Tries left before systemd-boot skips the entry; null once blessed (or when not counted). */
  triesLeft: z.number().int().nullable(),
  triesDone: z.number().int().nullable(),
  /** The kernel command line. */
  options: z.string(),
});
export type BootEntryStatus = z.infer<typeof BootEntryStatus>;

export const DeploymentStatus = z.object({
  id: DeploymentId,
  /** fs-verity digest of the image (sha256 for squashfs): the particle.image= the entry pins. */
  imageDigest: Sha256Hex,
  /** Where the tree came from, as given to `particle stage`. */
  source: z.string(),
  /** VERSION_ID of the tree or --version; null when neither was known. */
  version: z.string().nullable(),
  /** ISO 8601 time of staging. */
  created: z.string(),
  format: RootFormat,
  /** Kernel version in the tree. */
  kernel: z.string().nullable(),
  /** The entry that boots this deployment; null if it has none (it will not boot). */
  bootEntry: BootEntryStatus.nullable(),
  /** Local /etc changes that could not be carried over to this deployment. */
  etcConflicts: z.array(EtcConflict),
  /** Made by `particle layer`: the unlayered image it stands on (deployment id and image digest). */
  base: z.object({ id: DeploymentId, imageDigest: Sha256Hex }).optional(),
  /** Made by `particle layer`: the packages layered onto `base` (possibly none after a remove). */
  layered: z.array(z.string()).optional(),
  /** The OCI image it was staged from (reference, digests, config labels and created); absent for dir:/tar: sources. */
  image: z.optional(OciOrigin),
});
export type DeploymentStatus = z.infer<typeof DeploymentStatus>;

export const Host = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("Host"),
  spec: z.object({
    /** The deployment the boot loader will start next (its default entry), if it is ours. */
    defaultDeployment: z.nullable(DeploymentId),
  }),
  status: z.object({
    /** The running deployment (from particle.deploy= on the kernel command line); null when not booted from particle. */
    booted: DeploymentStatus.nullable(),
    /** The deployment the next boot starts, when that is not the booted one. */
    staged: DeploymentStatus.nullable(),
    /** The first deployment in boot order that is neither booted nor staged: where rollback goes. */
    rollback: DeploymentStatus.nullable(),
    /** Every other deployment in the store, newest first; `particle cleanup` removes them. */
    other: z.array(DeploymentStatus),
    /** The last `particle upgrade` (by hand or by particle-upgrade.timer): when, and what it found. Null if none ran yet. */
    upgradeCheck: LastCheck.nullable(),
    bootloader: z.object({
      type: z.literal("systemd-boot"),
      /** ESP mount point the entries were read from. */
      esp: z.string().nullable(),
      /** The loader.conf `default` setting. */
      defaultPattern: z.string().nullable(),
      /** The entry id systemd-boot will pick (ignoring EFI variables set by bootctl). */
      defaultEntry: z.string().nullable(),
      /** Sealed install: only signed UKIs (EFI/Linux) boot, each pinning its image digest. */
      sealed: z.boolean(),
    }),
  }),
});
export type Host = z.infer<typeof Host>;

export interface StatusInput {
  manifests: readonly Manifest[];
  /** All entries on the ESP in systemd-boot's order (ours and others). */
  entries: readonly LoadedEntry[];
  loaderDefault?: string;
  bootedId?: string;
  etc: ReadonlyMap<string, EtcCarryOver>;
  esp?: string;
  upgradeCheck?: LastCheck | null;
  sealed?: boolean;
  /** File names under EFI/Linux (Type #2 entries: the sealed UKIs). */
  ukis?: readonly string[];
}

/** A sealed UKI's entry (seal/plan.ts ukiFileName): the first in boot order that pins the image. */
function ukiStatus(ordered: readonly UkiName[], imageDigest: string): BootEntryStatus | null {
  const u = ordered.find((x) => pinsImage(x, imageDigest));
  if (!u) return null;
  return {
    file: u.name.file, id: u.name.id, title: null, generation: null,
    triesLeft: u.name.triesLeft ?? null, triesDone: u.name.triesLeft === undefined ? null : u.name.triesDone ?? 0,
    options: "(sealed in the signed UKI)",
  };
}

function entryStatus(e: LoadedEntry): BootEntryStatus {
  const gen = Number.parseInt(e.version ?? "", 10);
  return {
    file: e.name.file,
    id: e.name.id,
    title: getKey(e.entry, "title") ?? null,
    generation: Number.isFinite(gen) ? gen : null,
    triesLeft: e.name.triesLeft ?? null,
    triesDone: e.name.triesDone ?? null,
    options: e.options,
  };
}

/** Pure: the status from what was read off the sysroot and the ESP. */
export function buildStatus(input: StatusInput): Host {
  const byId = new Map(input.manifests.map((m) => [m.id, m]));
  // First entry per deployment in boot order (a deployment can have two during a rename).
  const entryOf = new Map<string, LoadedEntry>();
  for (const e of input.entries) if (e.deployId && byId.has(e.deployId) && !entryOf.has(e.deployId)) entryOf.set(e.deployId, e);
  // Sealed UKIs name their deployment by image digest; a sealed ESP has no Type #1 entries of ours,
  // so placing them after the Type #1 entries is their boot order.
  const ukis = orderUkis(input.ukis ?? []);
  const ukiDeploy = (u: UkiName) => input.manifests.find((m) => pinsImage(u, m.imageDigest))?.id;
  const ordered = [
    ...input.entries.map((e) => ({ id: e.name.id, deployId: e.deployId })),
    ...ukis.map((u) => ({ id: u.name.id, deployId: ukiDeploy(u) })),
  ];
  const defaultEntryId = predictDefault(ordered.map((e) => e.id), input.loaderDefault);
  const defaultEntry = ordered.find((e) => e.id === defaultEntryId);
  const defaultDeployment = defaultEntry?.deployId && byId.has(defaultEntry.deployId) ? defaultEntry.deployId : null;

  const view = (id: string | undefined | null): DeploymentStatus | null => {
    const m = id ? byId.get(id) : undefined;
    if (!m) return null;
    const e = entryOf.get(m.id);
    return {
      id: m.id, imageDigest: m.imageDigest, source: m.source, version: m.version ?? null, created: m.created,
      format: m.format, kernel: m.kernel ?? null, bootEntry: e ? entryStatus(e) : ukiStatus(ukis, m.imageDigest),
      etcConflicts: input.etc.get(m.id)?.conflicts ?? [],
      ...(m.layered ? { base: m.base, layered: m.layered } : {}),
      // Only on image deployments: the field is an addition to v1, absent rather than null elsewhere.
      ...(m.oci ? { image: m.oci } : {}),
    };
  };

  const booted = view(input.bootedId);
  const staged = defaultDeployment && defaultDeployment !== booted?.id ? view(defaultDeployment) : null;
  const taken = new Set([booted?.id, staged?.id]);
  const inOrder = [...new Set(ordered.flatMap((e) => (e.deployId && byId.has(e.deployId) ? [e.deployId] : [])))];
  const rollbackId = inOrder.find((id) => !taken.has(id));
  const rollback = view(rollbackId);
  taken.add(rollbackId);
  // Newest first: entry order for those with entries, then the rest by creation time.
  const rest = [...new Set([...inOrder, ...[...input.manifests].sort((a, b) => b.created.localeCompare(a.created)).map((m) => m.id)])];
  const other = rest.filter((id) => !taken.has(id)).map((id) => view(id)!);

  return Host.parse({
    apiVersion: API_VERSION,
    kind: "Host",
    spec: { defaultDeployment },
    status: {
      booted, staged, rollback, other,
      upgradeCheck: input.upgradeCheck ?? null,
      bootloader: { type: "systemd-boot", esp: input.esp ?? null, defaultPattern: input.loaderDefault ?? null, defaultEntry: defaultEntryId ?? null, sealed: input.sealed ?? false },
    },
  });
}
