// Package layering, the pure part: which deployment is the lower layer, which package set the new
// deployment gets, and the apt command lines that make it. The executor (chroot.ts, layer.ts) only
// carries the plan out.
//
// A layered deployment is always "base image + package set" (rpm-ostree's model): the set is
// installed onto the unlayered base in one apt run, so removing a package gives exactly the base
// plus the rest, with no leftovers from the removed one. When `particle cleanup` has removed the
// base deployment, the plan falls back to changing the current layered tree in place (install the
// new packages, purge the removed ones and what only they pulled in).
import type { Manifest } from "../manifest.ts";

export interface LayerRequest {
  install: readonly string[];
  remove: readonly string[];
}

export interface LayerPlan {
  /** The deployment the request was made against (its `layered` set is the starting point). */
  from: string;
  /** The deployment whose tree is the overlay's read-only lower layer. */
  lower: string;
  /** "rebase": lower is the unlayered base, the whole set is installed; "incremental": lower is `from`. */
  mode: "rebase" | "incremental";
  /** Recorded in the new manifest. */
  base: { id: string; imageDigest: string };
  /** The layered set of the new deployment, sorted. */
  packages: string[];
  added: string[];
  removed: string[];
  /** Packages apt installs / purges in the chroot. */
  aptInstall: string[];
  aptPurge: string[];
}

/**
 * Debian package names (policy 5.6.1: lower case, digits, + - ., at least two characters), with an
 * optional :arch. Versions and releases (pkg=1.2, pkg/trixie) are not accepted: the set recorded
 * for `particle upgrade` must be names that stay valid on a new base.
 */
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$/;

export function checkPackageName(name: string): void {
  if (!PACKAGE_NAME.test(name)) throw new Error(`"${name}" is not a Debian package name (lower-case letters, digits, + - . and an optional :arch)`);
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

/** The unlayered image a deployment stands on: its recorded base, or itself. */
export function baseOf(m: Manifest): { id: string; imageDigest: string } {
  return m.base ?? { id: m.id, imageDigest: m.imageDigest };
}

export function planLayer(o: { from: Manifest; deployments: readonly Manifest[]; request: LayerRequest }): LayerPlan {
  const { from, request } = o;
  for (const p of [...request.install, ...request.remove]) checkPackageName(p);
  const current = new Set(from.layered ?? []);
  const both = request.install.filter((p) => request.remove.includes(p));
  if (both.length) throw new Error(`asked to both install and remove ${both.join(", ")}`);
  const already = request.install.filter((p) => current.has(p));
  if (already.length) throw new Error(`already layered on deployment ${from.id}: ${already.join(", ")}`);
  const absent = request.remove.filter((p) => !current.has(p));
  if (absent.length) {
    throw new Error(`not layered on deployment ${from.id}: ${absent.join(", ")} (layered: ${current.size ? sorted(current).join(" ") : "none"}; packages of the base image cannot be removed by layering)`);
  }
  const added = sorted(request.install);
  const removed = sorted(request.remove);
  if (added.length === 0 && removed.length === 0) throw new Error("no packages given");
  const packages = sorted([...current, ...added].filter((p) => !removed.includes(p)));
  const base = baseOf(from);
  const baseHere = o.deployments.some((m) => m.id === base.id && m.imageDigest === base.imageDigest && !m.layered?.length);
  if (baseHere) return { from: from.id, lower: base.id, mode: "rebase", base, packages, added, removed, aptInstall: packages, aptPurge: [] };
  return { from: from.id, lower: from.id, mode: "incremental", base, packages, added, removed, aptInstall: added, aptPurge: removed };
}

/** For `particle upgrade`: the same layered set onto a freshly staged, unlayered base. */
export function planReapply(o: { base: Manifest; previous: Manifest }): LayerPlan | undefined {
  const packages = sorted(o.previous.layered ?? []);
  if (packages.length === 0) return undefined;
  if (o.base.layered?.length) throw new Error(`deployment ${o.base.id} is itself layered; re-apply layers onto an unlayered base`);
  return {
    from: o.base.id, lower: o.base.id, mode: "rebase", base: baseOf(o.base), packages, added: packages, removed: [],
    aptInstall: packages, aptPurge: [],
  };
}

/**
 * Options every apt-get run gets: no prompts, keep local conffiles, no recommends. dpkg's
 * --force-unsafe-io skips its fsync per unpacked file: the tree is a scratch overlay that staging
 * syncs (syncfs) before anything gets a final name, and a crash throws it away.
 */
export const APT_OPTIONS = [
  "-y", "-q", "--no-install-recommends",
  "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "-o", "Dpkg::Options::=--force-unsafe-io",
  "-o", "APT::Sandbox::User=root",
];

/** The environment of every command in the chroot: nothing of the caller's leaks in. */
export const CHROOT_ENV: Record<string, string> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8",
  DEBIAN_FRONTEND: "noninteractive",
  DEBCONF_NONINTERACTIVE_SEEN: "true",
  APT_LISTCHANGES_FRONTEND: "none",
  // Kernel postinst hooks build an initramfs into the tree's /boot; particle builds its own.
  INITRD: "No",
};

export interface AptCommands {
  update: string[];
  simulate: string[] | undefined;
  purge: string[][];
  install: string[] | undefined;
}

/** Where, inside the chroot, a copy of the booted system's /etc/apt is put (a tmpfs: see chroot.ts). */
export const CHROOT_APT_ETC = "/run/particle-apt";

/**
 * Pure: the apt-get command lines of a plan (before the DKMS headers are known). `aptEtc`: apt's
 * configuration directory in the chroot when it is not the tree's own /etc/apt (the booted
 * system's sources and keys, see layer.ts).
 */
export function aptCommands(p: Pick<LayerPlan, "aptInstall" | "aptPurge">, extra: readonly string[] = [], aptEtc?: string): AptCommands {
  const install = [...p.aptInstall, ...extra];
  const opts = [...APT_OPTIONS, ...(aptEtc ? ["-o", `Dir::Etc=${aptEtc}`] : [])];
  return {
    update: ["apt-get", "-q", ...(aptEtc ? ["-o", `Dir::Etc=${aptEtc}`] : []), "update"],
    simulate: install.length ? ["apt-get", ...opts, "--simulate", "install", ...install] : undefined,
    purge: p.aptPurge.length ? [["apt-get", ...opts, "purge", ...p.aptPurge], ["apt-get", ...opts, "autoremove", "--purge"]] : [],
    install: install.length ? ["apt-get", ...opts, "install", ...install] : undefined,
  };
}

/** Pure: the package names an `apt-get --simulate install` would install or upgrade ("Inst NAME (…)"). */
export function simulatedInstalls(out: string): string[] {
  const names: string[] = [];
  for (const line of out.split("\n")) {
    const m = /^Inst (\S+)/.exec(line);
    if (m) names.push(m[1]!);
  }
  return names;
}

/** The headers DKMS needs to build modules for the deployment's kernel (Debian and Ubuntu naming). */
export function headersPackage(kver: string): string {
  return `linux-headers-${kver}`;
}

/**
 * Pure: whether the headers for `kver` must be added to the install: DKMS is (or will be) in the
 * tree and the headers are not.
 */
export function needsHeaders(o: { simulated: readonly string[]; dkmsInTree: boolean; headersInTree: boolean }): boolean {
  return !o.headersInTree && (o.dkmsInTree || o.simulated.includes("dkms"));
}

/**
 * Pure: what apt said, for an error message: its E: lines (and dpkg's "error" lines) in order,
 * else the last lines of its output.
 */
export function aptErrors(stderr: string, stdout = ""): string {
  const lines = `${stderr}\n${stdout}`.split("\n").map((l) => l.trimEnd());
  const errs = lines.filter((l) => /^E: /.test(l) || /^dpkg: error/.test(l) || /^Errors were encountered/.test(l));
  if (errs.length) return [...new Set(errs)].join("\n");
  return lines.filter((l) => l.trim()).slice(-10).join("\n");
}
