// The update cycle on directories, without a VM: stage A, "boot" it (a kernel command line given
// to the commands), change /etc, stage B, finalize (carry /etc with a conflict), roll back and
// forth, edit kernel arguments, stage C, clean up. Staging is the real `particle stage`; the
// entries are written by the same module stage uses on a booted system (writeDeploymentEntry), with
// a fake kernel and initramfs.
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { particle, particleOk, stageJson } from "./lib/particle.ts";
import { makeTinyTree } from "./install-helpers.ts";
import { writeDeploymentEntry } from "../../runtime/src/bootloader/deploy-entry.ts";
import { installSystemdBoot } from "../../runtime/src/bootloader/systemd-boot.ts";
import { sha256OfFile } from "../../runtime/src/bootloader/esp.ts";
import { readManifests } from "../../runtime/src/deployments/read.ts";
import { readObjectList } from "../../runtime/src/store/deployments.ts";
import { objectPath, storeLayout } from "../../runtime/src/store/layout.ts";

let dir: string;
let sysroot: string;
let esp: string;
const ROOT_UUID = "0b5c7d2e-1111-4222-8333-944455556666";

const tree = (name: string, release: string, extra: (root: string) => void) => {
  const root = join(dir, name);
  makeTinyTree(root, { release, kernelBytes: Buffer.alloc(1_000_000, 5) });
  writeFileSync(join(root, "common"), "shared by every deployment\n");
  extra(root);
  return root;
};

/** Stage + entry, as `particle stage` does on a booted system. */
const stageAndEntry = (root: string, initrdFill: number): string => {
  const r = stageJson(`dir:${root}`, sysroot);
  const initrd = join(dir, `initrd-${r.id}`);
  writeFileSync(initrd, Buffer.alloc(200_000, initrdFill));
  const m = readManifests(sysroot).find((x) => x.id === r.id)!;
  writeDeploymentEntry({ esp, manifest: m, rootUuid: ROOT_UUID, kernel: join(root, "usr/lib/modules/6.12.0-fake/vmlinuz"), initrd, extraArgs: ["console=ttyS0"] });
  return r.id;
};

const booted = (id: string | null) => ["--sysroot", sysroot, "--esp", esp, "--cmdline", id ? `root=UUID=${ROOT_UUID} rw particle.deploy=${id} particle.image=x` : ""];
const status = (id: string | null) => JSON.parse(particleOk(["status", "--json", ...booted(id)]));
const roles = (h: any) => [h.status.booted?.id ?? null, h.status.staged?.id ?? null, h.status.rollback?.id ?? null, h.status.other.map((d: any) => d.id)];

beforeAll(() => {
  dir = mkdtempSync("/var/tmp/particle-cycle-");
  sysroot = join(dir, "sysroot");
  esp = join(dir, "esp");
  mkdirSync(sysroot);
  mkdirSync(esp);
  installSystemdBoot(esp, "/usr/lib/systemd/boot/efi/systemd-bootx64.efi");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the update cycle", () => {
  let A: string, B: string, C: string;

  it("stage A: it is the default; booted into it, nothing is staged", () => {
    A = stageAndEntry(tree("a", "13", (r) => writeFileSync(join(r, "a-only"), "only in A\n")), 1);
    expect(roles(status(null))).toEqual([null, A, null, []]);
    expect(roles(status(A))).toEqual([A, null, null, []]);
    expect(particleOk(["status", ...booted(A)])).toMatch(/● Booted: deployment 1 \(composefs\)/);
  });

  it("local /etc changes on A: an edit, a deletion and a file where B will have a directory", () => {
    const up = join(sysroot, "particle/deploy", A, "etc/upper");
    writeFileSync(join(up, "hostname"), "edited-locally\n");
    mkdirSync(join(up, "ssh"), { recursive: true });
    execFileSync("mknod", [join(up, "ssh/sshd_config"), "c", "0", "0"]);
    writeFileSync(join(up, "foo.d"), "a local file\n");
  });

  it("stage B: staged for the next boot, A stays booted", () => {
    B = stageAndEntry(tree("b", "14", (r) => {
      mkdirSync(join(r, "etc/foo.d"));
      writeFileSync(join(r, "etc/foo.d/vendor.conf"), "from the image\n");
    }), 2);
    const h = status(A);
    expect(roles(h)).toEqual([A, B, null, []]);
    expect(h.spec.defaultDeployment).toBe(B);
    expect(h.status.staged.bootEntry).toMatchObject({ file: "particle-14-2+3.conf", triesLeft: 3, generation: 2 });
  });

  it("finalize carries /etc over to B and reports the conflict", () => {
    const r = particle(["finalize", "--json", ...booted(A)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\/etc\/foo.d: local file where deployment 2 has a dir; not carried over, saved as particle\/deploy\/2\/etc-conflicts\/.*\/foo.d/);
    const up = join(sysroot, "particle/deploy", B, "etc/upper");
    expect(readFileSync(join(up, "hostname"), "utf8")).toBe("edited-locally\n");
    const wh = lstatSync(join(up, "ssh/sshd_config"));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect(existsSync(join(up, "foo.d"))).toBe(false);
    // A keeps its own upper.
    expect(readFileSync(join(sysroot, "particle/deploy", A, "etc/upper/foo.d"), "utf8")).toBe("a local file\n");
    const h = status(A);
    expect(h.status.staged.etcConflicts).toEqual([expect.objectContaining({ path: "foo.d", local: "file", image: "dir" })]);
    const saved = join(sysroot, h.status.staged.etcConflicts[0].savedAs);
    expect(readFileSync(saved, "utf8")).toBe("a local file\n");
    expect(particleOk(["status", ...booted(A)])).toMatch(/conflict: \/etc\/foo.d: local file, image dir/);
  });

  it("finalize with nothing staged does nothing", () => {
    expect(particle(["finalize", ...booted(B)]).stderr).toMatch(/nothing staged/);
  });

  it("rollback with B staged calls B off; rollback again stages it again", () => {
    expect(particle(["rollback", ...booted(A)]).stderr).toMatch(/staged deployment 2 called off; deployment 1 boots next/);
    expect(roles(status(A))).toEqual([A, null, B, []]);
    particleOk(["rollback", ...booted(A)]);
    expect(roles(status(A))).toEqual([A, B, null, []]);
  });

  it("booted into B, A is the rollback; rollback makes A the default", () => {
    expect(roles(status(B))).toEqual([B, null, A, []]);
    const r = JSON.parse(particleOk(["rollback", "--json", ...booted(B)]));
    expect(r).toMatchObject({ target: A, from: B, why: "rollback" });
    expect(roles(status(B))).toEqual([B, A, null, []]);
    // Going back to an older deployment does not hand it the newer /etc.
    const aUpper = join(sysroot, "particle/deploy", A, "etc/upper/hostname");
    expect(particle(["finalize", ...booted(B)]).stderr).toMatch(/deployment 1 is older than the booted 2 \(a rollback\): its \/etc is left as it was/);
    expect(readFileSync(aUpper, "utf8")).toBe("edited-locally\n");
    particleOk(["rollback", ...booted(B)]);
    expect(roles(status(B))).toEqual([B, null, A, []]);
  });

  it("kargs edits the default entry's options, and not particle's own", () => {
    expect(particleOk(["kargs", ...booted(B)]).trim()).toMatch(/ console=ttyS0$/);
    const out = particleOk(["kargs", "--append", "quiet", "--append", "loglevel=3", "--delete", "console=ttyS0", ...booted(B)]).trim();
    expect(out).toBe(`root=UUID=${ROOT_UUID} rw particle.deploy=${B} particle.image=${readManifests(sysroot).find((m) => m.id === B)!.imageDigest} quiet loglevel=3`);
    expect(status(B).status.booted.bootEntry.options).toBe(out);
    expect(particleOk(["kargs", A, "--append", "single", ...booted(B)]).trim()).toMatch(/console=ttyS0 single$/);
    const r = particle(["kargs", "--delete", "particle.image=", ...booted(B)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/particle.image= is set by particle/);
  });

  it("stage C, call it off: B booted, C the rollback, A beyond; cleanup removes A and only what A used", () => {
    C = stageAndEntry(tree("c", "15", () => {}), 3);
    particleOk(["rollback", ...booted(B)]);
    expect(roles(status(B))).toEqual([B, null, C, [A]]);
    const l = storeLayout(sysroot);
    const keep = new Set([...readObjectList(l, B), ...readObjectList(l, C)]);
    const onlyA = readObjectList(l, A).filter((d) => !keep.has(d));
    expect(onlyA.length).toBeGreaterThan(0);
    const aEntry = status(B).status.other[0].bootEntry;

    const dry = JSON.parse(particleOk(["cleanup", "--dry-run", "--json", ...booted(B)]));
    expect(dry).toMatchObject({ dryRun: true, removedDeployments: [A] });
    expect(existsSync(join(l.deploy, A))).toBe(true);

    const r = JSON.parse(particleOk(["cleanup", "--json", ...booted(B)]));
    expect(r).toMatchObject({ dryRun: false, removedDeployments: [A], removedEntries: [aEntry.file] });
    expect(r.kept.sort()).toEqual([B, C].sort());
    expect(r.removedObjects).toBe(onlyA.length);
    expect(existsSync(join(l.deploy, A))).toBe(false);
    for (const d of onlyA) expect(existsSync(objectPath(l, d))).toBe(false);
    for (const d of keep) expect(existsSync(objectPath(l, d))).toBe(true);
    expect(existsSync(join(esp, "loader/entries", aEntry.file))).toBe(false);
    // A's initramfs dir is gone, the shared kernel stays.
    expect(existsSync(join(esp, "particle", sha256OfFile(join(dir, `initrd-${A}`))))).toBe(false);
    expect(existsSync(join(esp, "particle", sha256OfFile(join(dir, `initrd-${B}`))))).toBe(true);
    expect(existsSync(join(esp, "particle", sha256OfFile(join(dir, "a/usr/lib/modules/6.12.0-fake/vmlinuz")), "vmlinuz"))).toBe(true);
    expect(roles(status(B))).toEqual([B, null, C, []]);
    expect(particle(["verify", "--sysroot", sysroot]).code).toBe(0);
    // Nothing more to do.
    expect(JSON.parse(particleOk(["cleanup", "--json", ...booted(B)]))).toMatchObject({ removedDeployments: [], removedObjects: 0, removedBootDirs: 0 });
  });
});
