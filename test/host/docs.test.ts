// Every shell command of docs/*.md, run for real: the compiled particle, real mounts, real staging
// of a small OS tree, on a machine that is a chroot with the test's store at /sysroot and the ESP
// at /boot/efi, its kernel command line bound over /proc/cmdline (lib/machine.ts). So a command a
// document shows for a booted machine (`particle upgrade`, `particle rollback`) runs exactly as
// written. `reboot` is the one command that is played rather than run: finalize, then the default
// entry's command line becomes /proc/cmdline. Placeholders (<DISK>) take the values of PLACEHOLDERS.
// A shell fence whose commands are not all run, or a shown output line that was not printed,
// fails the test.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { missingOutput, parseDocFences, substitute, type DocFence } from "../lib/doc-blocks.ts";
import { particleUsageProblems } from "../lib/cli-usage.ts";
import { COMMANDS } from "../../runtime/src/cli.ts";
import { addHostShell, ESP, inNamespace, makeMachine, reboot, runOn, stopMachine, SYSROOT, type Machine } from "./lib/machine.ts";
import { esp as espOf, makeTinyTree, HOST_SYSTEMD_BOOT } from "./install-helpers.ts";
import { tarDir, writeImage } from "./lib/oci-layout.ts";
import { writeDeploymentEntry } from "../../runtime/src/bootloader/deploy-entry.ts";
import { installSystemdBoot } from "../../runtime/src/bootloader/systemd-boot.ts";
import { readManifests } from "../../runtime/src/deployments/read.ts";

const DOCS = join(__dirname, "../../docs");
const KVER = "6.12.0-fake"; // new enough for composefs, which --format auto then picks
const ROOT_UUID = "0b5c7d2e-1111-4222-8333-944455556666";

/** Test values of the placeholders the documents use. */
const PLACEHOLDERS: Record<string, string> = {
  DISK: "/root/disk.img",
  "OLD-ROOT": "/root/old-root.img",
  TREE: "/srv/os-tree",
  IMAGE: "oci:/srv/images/os:latest",
  KVER,
};

const dirs: string[] = [];
/** Mounts and loop devices to undo, newest last. */
const undo: Array<() => void> = [];
afterAll(() => {
  for (const u of undo.reverse()) u();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
/** A machine stopped after the file's tests (its mounts go with it). */
const machine = (what: string): Machine => {
  const m = makeMachine(tempDir(what));
  undo.push(() => stopMachine(m));
  return m;
};
const tempDir = (what: string) => {
  const d = mkdtempSync(`/var/tmp/particle-docs-${what}-`);
  dirs.push(d);
  return d;
};

/** An OS tree with Particle-OS in it (tiny, with a fake kernel), and a shell so that its "dracut"
 *  (a stand-in that writes a small file: the real dracut path is install.test.ts's) runs in a chroot. */
function osTree(root: string, release: string): string {
  makeTinyTree(root, { release, kernelBytes: Buffer.alloc(1_000_000, 5) });
  addHostShell(root);
  mkdirSync(join(root, "usr/bin"), { recursive: true });
  writeFileSync(join(root, "usr/bin/dracut"), "#!/bin/sh\n# dracut ... OUT KVER: the next-to-last argument is the output\nfor a; do o=$p; p=$a; done\necho \"initramfs for $p\" > \"$o\"\n", { mode: 0o755 });
  return root;
}

/** A machine booted from deployment 1, staged from IMAGE (release 13); the image has moved on to 13.1 since. */
function bootedMachine(): Machine {
  const m = machine("booted");
  const dir = join(m.root, "..");
  const layout = join(m.root, "srv/images/os");
  writeImage(layout, { tag: "latest", layers: [{ tar: tarDir(osTree(join(dir, "v13"), "13")), compression: "gzip" }], labels: { "org.opencontainers.image.version": "13" } });
  const out = runOn(m, `particle stage ${PLACEHOLDERS.IMAGE} --json`);
  if (out.code !== 0) throw new Error(out.stderr);
  const esp = join(m.root, ESP.slice(1));
  installSystemdBoot(esp, HOST_SYSTEMD_BOOT);
  const manifest = readManifests(join(m.root, SYSROOT.slice(1)))[0]!;
  const initrd = join(dir, "initrd.img");
  writeFileSync(initrd, "initramfs for 13\n");
  writeDeploymentEntry({ esp, manifest, rootUuid: ROOT_UUID, kernel: join(dir, "v13/usr/lib/modules", KVER, "vmlinuz"), initrd, extraArgs: ["quiet"] });
  reboot(m);
  writeImage(layout, { tag: "latest", layers: [{ tar: tarDir(osTree(join(dir, "v13.1"), "13.1")), compression: "gzip" }], labels: { "org.opencontainers.image.version": "13.1" } });
  return m;
}

/**
 * The machine booting from the disk image file `install` wrote: its root partition at /sysroot,
 * the store's var/ over /var as particle-boot binds it, the ESP at /efi (where the tree mounts it;
 * copied out with mtools, as the host kernel may lack vfat); then the default entry boots.
 */
function bootInstalledDisk(m: Machine, disk: string): string {
  const loop = attached(disk);
  inNamespace(m, ["mount", `${loop}p2`, join(m.root, SYSROOT)]);
  inNamespace(m, ["mount", "--bind", join(m.root, SYSROOT, "particle/var"), join(m.root, "var")]);
  espOf.extract(disk, join(m.root, "efi"));
  return reboot(m);
}

const loops = new Map<string, string>();
/** The loop device of a disk image file, attached with its partitions on first use. */
function attached(file: string): string {
  let loop = loops.get(file);
  if (loop) return loop;
  loop = execFileSync("losetup", ["--find", "--show", "--partscan", file], { encoding: "utf8" }).trim();
  // Runs before the machine stops (undo goes newest first): the device is detached once the
  // namespace, and with it the mount, is gone.
  undo.push(() => execFileSync("losetup", ["-d", loop!]));
  // This host's kernel does not scan a loop device's table by itself.
  execFileSync("partx", ["--update", loop]);
  loops.set(file, loop);
  return loop;
}

/** A Debian install as it was before the move: an ext4 image of its root, with an fstab, a swap
 *  file, a home and some state in /var. */
function oldInstall(m: Machine, image: string): void {
  const tree = osTree(join(m.root, "../old-tree"), "13");
  writeFileSync(join(tree, "etc/fstab"), [
    "UUID=0f0e0d0c-0b0a-4909-8807-060504030201 / ext4 errors=remount-ro 0 1",
    "UUID=ABCD-1234 /boot/efi vfat umask=0077 0 1",
    "/swapfile none swap sw 0 0",
    "UUID=5e1d2c3b-4a59-4687-9765-a4b3c2d1e0f9 /srv/data ext4 defaults 0 2", ""].join("\n"));
  writeFileSync(join(tree, "swapfile"), Buffer.alloc(65536));
  mkdirSync(join(tree, "home/alice"), { recursive: true });
  writeFileSync(join(tree, "home/alice/notes.txt"), "moved over\n");
  mkdirSync(join(tree, "var/lib/app"), { recursive: true });
  writeFileSync(join(tree, "var/lib/app/state"), "42\n");
  execFileSync("mkfs.ext4", ["-q", "-d", tree, join(m.root, image.slice(1)), "64M"]);
}

/** The documents whose commands the tests below run. */
const RUN = ["install.md", "daily.md", "troubleshooting.md", "migrate.md", "security.md"];

const fencesOf = (file: string): DocFence[] => parseDocFences(readFileSync(join(DOCS, file), "utf8"), file);

/** Runs a document's shell fences in order on `m`; returns how many commands ran. */
function runDoc(file: string, m: Machine, table: Record<string, string>, boot = () => reboot(m)): number {
  const fences = fencesOf(file);
  let ran = 0;
  for (const f of fences) {
    for (const c of f.commands) {
      const where = `${file}:${c.line}`;
      const cmd = substitute(c.text, table, where);
      let printed: string;
      if (cmd === "reboot" || cmd === "systemctl reboot") {
        printed = `booted deployment ${boot()}\n`;
      } else {
        const r = runOn(m, cmd);
        printed = r.stdout + r.stderr;
        if (r.code !== 0) throw new Error(`${where}: \`${cmd}\` exited ${r.code}:\n${printed}`);
      }
      if (process.env.DOCS_SHOW) process.stderr.write(`--- ${where}: ${cmd}\n${printed}`);
      const missing = missingOutput(c.expect, printed, table);
      if (missing.length) throw new Error(`${where}: \`${cmd}\` did not print, in this order:\n  ${missing.join("\n  ")}\nIt printed:\n${printed}`);
      ran++;
    }
  }
  return ran;
}

describe("docs/*.md: every shell command runs and prints what the document shows", () => {
  it("every document with shell commands is run below; the others have none", () => {
    const docs = readdirSync(DOCS).filter((f) => f.endsWith(".md")).sort();
    const withCommands = docs.filter((f) => fencesOf(f).some((x) => x.commands.length > 0));
    expect(withCommands).toEqual(RUN.slice().sort());
    expect(docs).toContain("status-schema.md");
  });

  it("particle lines in fences that are not run name real commands and options", () => {
    const problems = readdirSync(DOCS).filter((f) => f.endsWith(".md")).flatMap((f) => fencesOf(f)
      .filter((x) => x.commands.length === 0)
      .flatMap((x) => x.body.map((l, i) => ({ where: `${f}:${x.line + 1 + i}`, line: l.replace(/^[$#] /, "") })))
      .flatMap(({ where, line }) => particleUsageProblems(line, COMMANDS).map((p) => `${where}: ${p}`)));
    expect(problems).toEqual([]);
    // The check sees the layering commands daily.md shows without running them.
    expect(fencesOf("daily.md").some((x) => x.lang === "text" && x.body.some((l) => l.startsWith("# particle layer install")))).toBe(true);
  });

  it("migrate.md: a Debian install copied onto a new disk (an image file)", () => {
    const m = machine("migrate");
    oldInstall(m, PLACEHOLDERS["OLD-ROOT"]!);
    // <NEW-DISK> is an image file (this host's kernel makes no partition devices when a loop
    // device is partitioned); its root partition is attached when a command first names it,
    // after install has written it.
    const table: Record<string, string> = { ...PLACEHOLDERS, "NEW-DISK": "/root/new-disk.img" };
    Object.defineProperty(table, "NEW-ROOT", { enumerable: true, get: () => `${attached(join(m.root, table["NEW-DISK"]!))}p2` });
    expect(runDoc("migrate.md", m, table, () => bootInstalledDisk(m, join(m.root, table["NEW-DISK"]!)))).toBe(21);
  }, 120_000);

  it("install.md: install from a live system, then the first boot", () => {
    const m = machine("install");
    osTree(join(m.root, PLACEHOLDERS.TREE!.slice(1)), "13");
    expect(runDoc("install.md", m, PLACEHOLDERS, () => bootInstalledDisk(m, join(m.root, PLACEHOLDERS.DISK!)))).toBe(5);
  }, 120_000);

  it("troubleshooting.md: deployment 2 ran out of tries, deployment 1 booted instead", () => {
    const m = bootedMachine();
    const staged = runOn(m, "particle upgrade");
    if (staged.code !== 0) throw new Error(staged.stderr);
    // What systemd-boot leaves after three tries that never reached boot-complete.target.
    const entries = join(m.root, ESP, "loader/entries");
    renameSync(join(entries, "particle-13.1-2+3.conf"), join(entries, "particle-13.1-2+0-3.conf"));
    expect(runDoc("troubleshooting.md", m, PLACEHOLDERS)).toBe(7);
  }, 120_000);

  it("security.md, on a booted machine", () => {
    expect(runDoc("security.md", bootedMachine(), PLACEHOLDERS)).toBe(3);
  }, 120_000);

  it("daily.md, on a booted machine", () => {
    expect(runDoc("daily.md", bootedMachine(), PLACEHOLDERS)).toBe(14);
  }, 120_000);
});
