// The command table. Options are declared here and command modules are imported only when their
// command runs, so `particle status` does not load the EROFS writer. Nothing below calls
// process.exit: errors propagate to the one catch in main().
import { cac } from "cac";
import { basename } from "node:path";
import { buildInfo, renderVersion } from "./build-info.ts";

export class UsageError extends Error {}

type Action = (args: string[], opts: Record<string, any>) => Promise<unknown>;

interface CommandSpec {
  name: string;
  description: string;
  options?: Array<[flags: string, description: string, config?: { default?: unknown }]>;
  load: () => Promise<{ default: Action }>;
}

const SYSROOT: [string, string, { default: string }] = ["--sysroot <dir>", "Root holding the particle/ store", { default: "/sysroot" }];
const JSON_OPT: [string, string] = ["--json", "Print machine-readable JSON"];
const ESP: [string, string] = ["--esp <dir>", "ESP holding loader/ (default: /efi, /boot/efi or /boot)"];
const CMDLINE: [string, string] = ["--cmdline <text>", "Kernel command line to read the booted deployment from (default /proc/cmdline)"];
const SIG_POLICY: [string, string] = ["--signature-policy <file>", "containers-policy.json(5) that image signatures are checked against (default /etc/containers/policy.json)"];
const NO_VERIFY: [string, string] = ["--insecure-no-verify-signatures", "Stage an image without checking its signatures (warns loudly)"];

export const COMMANDS: CommandSpec[] = [
  {
    name: "stage <source>",
    description: "Stage a deployment from dir:PATH, tar:PATH (plain/gzip/zstd), a directory, or an image (docker://, oci:, oci-archive:, docker-archive:, containers-storage:)",
    options: [SYSROOT, ["--format <format>", "auto | composefs | erofs | squashfs (auto: the newest format the deployment's own kernel boots)", { default: "auto" }], JSON_OPT,
      ["--version <version>", "Version string recorded in the manifest"],
      ["--esp <dir>", "Also write the boot entry on this ESP (default on a particle-booted system: its ESP)"],
      CMDLINE, SIG_POLICY, NO_VERIFY,
      ["--uki <file>", "Sealed machine: the signed UKI (particle seal) that pins this image; installed as its boot entry"],
      ["--consume", "dir: sources: give the tree away; its files become the store's objects (hardlinks, no copy) and the tree is removed afterwards (ostree's --consume)"]],
    load: () => import("./commands/stage.ts"),
  },
  {
    name: "switch <image>",
    description: "Stage an image (docker://, oci:, …) as the next boot; `upgrade` then tracks that reference",
    options: [SYSROOT, ["--format <format>", "auto | composefs | erofs (auto: the newest format the image's own kernel boots)", { default: "auto" }], JSON_OPT,
      ["--version <version>", "Version string recorded in the manifest"], ESP, CMDLINE, SIG_POLICY, NO_VERIFY],
    load: () => import("./commands/switch.ts"),
  },
  {
    name: "upgrade",
    description: "Stage the tracked image again if its digest changed (the booted deployment's reference)",
    options: [SYSROOT, ["--format <format>", "auto | composefs | erofs (auto: the newest format the image's own kernel boots)", { default: "auto" }], JSON_OPT,
      ["--check", "Only say whether an update is available"],
      ["--auto", "As the upgrade timer: do what /etc/particle/upgrade.conf's Policy= says (check, stage or reboot)"],
      ["--config <file>", "The upgrade policy file for --auto (default /etc/particle/upgrade.conf)"],
      ["--from <id>", "Track the image of this deployment instead of the booted one (a sysroot that is not running)"],
      ESP, CMDLINE, SIG_POLICY, NO_VERIFY,
      ["--apt-config <dir>", "apt configuration (sources, keys) for the packages, copied into the chroot (default: /etc/apt on a booted system, else the tree's own)"]],
    load: () => import("./commands/upgrade.ts"),
  },
  {
    name: "mount <id> <target>",
    description: "Mount a deployment read-only (for inspection and tests)",
    options: [SYSROOT, ["--verity <mode>", "require | optional | off (default: require where supported)"]],
    load: () => import("./commands/mount.ts"),
  },
  {
    name: "unmount <target>",
    description: "Undo `particle mount`",
    load: () => import("./commands/unmount.ts"),
  },
  {
    name: "verify [id]",
    description: "Recompute the digests of objects and images; non-zero exit on any mismatch",
    options: [SYSROOT, JSON_OPT],
    load: () => import("./commands/verify.ts"),
  },
  {
    name: "list",
    description: "List staged deployments",
    options: [SYSROOT, JSON_OPT],
    load: () => import("./commands/list.ts"),
  },
  {
    name: "status",
    description: "Show the booted, staged and rollback deployments (like bootc status)",
    options: [SYSROOT, ESP, JSON_OPT,
      CMDLINE],
    load: () => import("./commands/status.ts"),
  },
  {
    name: "rollback",
    description: "Make the previous deployment the default (or call off a staged one)",
    options: [SYSROOT, ESP, JSON_OPT,
      CMDLINE,
      ["--once", "Boot that deployment at the next boot only; the default is unchanged (GRUB: next_entry)"]],
    load: () => import("./commands/rollback.ts"),
  },
  {
    name: "cleanup",
    description: "Remove deployments other than booted, staged and one rollback, and what only they used",
    options: [SYSROOT, ESP, JSON_OPT,
      CMDLINE,
      ["--dry-run", "Only say what would be removed"]],
    load: () => import("./commands/cleanup.ts"),
  },
  {
    name: "kargs [id]",
    description: "Show or edit a deployment's kernel arguments (default: the next boot's)",
    options: [SYSROOT, ESP,
      ["--append <arg>", "Add an argument (repeatable)"], ["--delete <arg>", "Remove an argument; NAME= removes all of that name (repeatable)"],
      CMDLINE],
    load: () => import("./commands/kargs.ts"),
  },
  {
    name: "install",
    description: "Partition a disk (or image file), install systemd-boot or GRUB and a first deployment",
    options: [["--to-disk <target>", "Disk image file (created sparse) or block device; erased"],
      ["--source <source>", "The tree (with particle installed): dir:PATH, tar:PATH, a directory, or an image (docker://, oci:, oci-archive:, docker-archive:, containers-storage:)"],
      ["--target-imgref <ref>", "Image sources: the reference the installed system tracks for updates, when it reaches the image by another name than --source (e.g. docker://10.0.2.100/os/x:stable)"],
      ["--size <size>", "Size of a new disk image file (default 8G)"],
      ["--bootloader <name>", "systemd-boot | grub", { default: "systemd-boot" }],
      ["--format <format>", "auto | composefs | erofs | squashfs (auto: the newest format the deployment's own kernel boots)", { default: "auto" }],
      ["--version <version>", "Version string recorded in the manifest"],
      ["--karg <arg>", "Extra kernel argument for the entry, e.g. console=ttyS0 (repeatable)"],
      ["--initramfs <file>", "Use this initramfs instead of building one with dracut in the deployment"],
      ["--sealed <keydir>", "Sealed boot: signed systemd-boot and a signed UKI pinning the image; the keys are enrolled on the first boot"],
      ["--luks-var <size>", "Strict sealed mode: a /var partition of this size, encrypted (LUKS2) on the first boot of a UKI with --karg particle.var=luks and unlocked only by the TPM2 for the owner's signed UKIs"],
      SIG_POLICY, NO_VERIFY, JSON_OPT],
    load: () => import("./commands/install.ts"),
  },
  {
    name: "keys <action> <dir>",
    description: "create: make an owner's Secure Boot keys (PK, KEK, db) and the .auth files firmware enrollment takes",
    options: [["--name <name>", "Common name in the certificates", { default: "Particle-OS owner" }]],
    load: () => import("./commands/keys.ts"),
  },
  {
    name: "seal <source>",
    description: "Build a signed UKI pinning the image digest of <source> (an image build step; needs the owner's db key)",
    options: [["--keys <dir>", "Key directory from particle keys create"], ["--initramfs <file>", "Initramfs with particle-boot"],
      ["--out <file>", "Where to write the signed UKI"], ["--format <format>", "composefs | erofs | squashfs", { default: "composefs" }],
      ["--version <version>", "IMAGE_VERSION of the UKI (systemd-boot boots the highest)"],
      ["--karg <arg>", "Extra kernel argument, sealed into the UKI (repeatable)"],
      ["--stub <file>", "systemd-stub to build on (default: the tree's linuxx64.efi.stub)"], JSON_OPT],
    load: () => import("./commands/seal.ts"),
  },
  {
    name: "finalize",
    description: "Carry /etc changes to the staged deployment (run at shutdown by particle-finalize.service)",
    options: [SYSROOT, ESP, JSON_OPT,
      CMDLINE],
    load: () => import("./commands/finalize.ts"),
  },
  {
    name: "layer <action> [...packages]",
    description: "install | remove | list | reapply: Debian packages layered onto the deployment with apt (DKMS included)",
    options: [SYSROOT, ESP, JSON_OPT, CMDLINE,
      ["--from <id>", "Deployment to layer onto (default: the next boot's, else the booted, else the newest)"],
      ["--onto <id>", "reapply: the new base deployment that gets --from's layered packages (what upgrade does)"],
      ["--apt-config <dir>", "apt configuration (sources, keys) for the packages, copied into the chroot (default: /etc/apt on a booted system, else the tree's own)"],
      ["--rebuild-initramfs", "Build the new deployment's initramfs with dracut (for a layered driver needed before the root is mounted); by default a layer that only adds modules boots with the lower deployment's"]],
    load: () => import("./commands/layer.ts"),
  },
  {
    name: "bless",
    description: "Mark the booted deployment good in GRUB's boot counting (run by particle-bless.service)",
    options: [SYSROOT, ESP, JSON_OPT, CMDLINE],
    load: () => import("./commands/bless.ts"),
  },
  {
    name: "health",
    description: "Run the health checks of /usr/lib/particle/health.d and /etc/particle/health.d; non-zero exit if one fails (run by particle-health.service)",
    options: [["--root <dir>", "Look for the health.d directories under this root", { default: "/" }], JSON_OPT],
    load: () => import("./commands/health.ts"),
  },
  {
    name: "doctor",
    description: "Explain this machine's state: kernel support and bootable formats, free space, orphaned entries and deployments, a quick verify, boot counting, finalize, the last upgrade check",
    options: [SYSROOT, ESP, JSON_OPT, CMDLINE],
    load: () => import("./commands/doctor.ts"),
  },
  {
    name: "grub-menu",
    description: "Print the GRUB menu generated from the ESP's entries; --write/--mkconfig put the ESP in GRUB mode",
    options: [ESP, CMDLINE,
      ["--write", "Write grub/particle.cfg and grub/particle.env on the ESP (GRUB mode from now on)"],
      ["--mkconfig", "--write, then print the grub.cfg lines that source the menu (for /etc/grub.d/15_particle)"],
      ["--env", "Print the boot-counting variables of grub/particle.env"]],
    load: () => import("./commands/grub-menu.ts"),
  },
  {
    name: "image <action> <tree> <layout>",
    description: "pack: write a directory tree as a bootable OCI image (an OCI layout), reproducibly (SOURCE_DATE_EPOCH); chunk: the same, in layers split along dpkg packages",
    options: [["--tag <tag>", "The image's name in the layout's index", { default: "latest" }],
      ["--label <key=value>", "An image label (repeatable)"],
      ["--epoch <seconds>", "Clamp file times and set `created` (default $SOURCE_DATE_EPOCH)"],
      ["--max-layers <n>", "chunk: at most this many layers", { default: 64 }], JSON_OPT],
    load: () => import("./commands/image.ts"),
  },
];

export async function main(argv0: string, argv: string[]): Promise<number> {
  // `particle-stage ARGS` is `particle stage ARGS`: the name users type before a reboot.
  if (basename(argv0) === "particle-stage") argv = ["stage", ...argv];
  const cli = cac("particle");
  for (const spec of COMMANDS) {
    const cmd = cli.command(spec.name, spec.description);
    for (const [flags, desc, cfg] of spec.options ?? []) cmd.option(flags, desc, cfg);
    cmd.action(async (...a: unknown[]) => {
      const opts = a.pop() as Record<string, any>;
      const mod = await spec.load();
      await mod.default(a.flat().filter((x) => x !== undefined).map(String), opts);
    });
  }
  cli.help();
  // Not cli.version(): cac would then claim every command's --version option (stage --version V).
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
    process.stdout.write(renderVersion(buildInfo()));
    return 0;
  }
  try {
    cli.parse(["particle", "particle", ...argv], { run: false });
    if (!cli.matchedCommand) {
      if (cli.options.help || cli.options.version) return 0;
      if (cli.args.length) throw new UsageError(`unknown command: ${cli.args[0]} (see particle --help)`);
      cli.outputHelp();
      return 2;
    }
    await cli.runMatchedCommand();
    return 0;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`particle: error: ${msg}\n`);
    if (process.env.PARTICLE_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return e instanceof UsageError || (e as any)?.name === "CACError" ? 2 : 1;
  }
}
