// `particle doctor` against a real sysroot and ESP (directories, and small tmpfs mounts for the
// space checks), each finding shown healthy first and then broken the way a machine breaks.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeDeploymentEntry } from "../../runtime/src/bootloader/deploy-entry.ts";
import { readManifests } from "../../runtime/src/deployments/read.ts";
import { makeTinyTree } from "./install-helpers.ts";
import { particle, stageJson } from "./lib/particle.ts";

const ROOT_UUID = "0b3c1a2e-7f61-4c1e-9d55-2f0c6f1a0001";
let dir: string;
let sysroot: string;
let esp: string;
let idA: string;
let idB: string;
const mounted: string[] = [];

const tree = (name: string, extra: string): string => {
  const root = join(dir, name);
  makeTinyTree(root, { kernelBytes: Buffer.alloc(1_000_000, 5) });
  writeFileSync(join(root, "extra"), extra);
  return root;
};
const entryFor = (s: string, e: string, id: string, root: string) => {
  const initrd = join(dir, `initrd-${id}`);
  writeFileSync(initrd, Buffer.alloc(200_000, Number(id)));
  writeDeploymentEntry({ esp: e, manifest: readManifests(s).find((m) => m.id === id)!, rootUuid: ROOT_UUID, kernel: join(root, "usr/lib/modules/6.12.0-fake/vmlinuz"), initrd });
};
const doctor = (opts: { sysroot?: string; esp?: string; booted?: string } = {}) => {
  const r = particle(["doctor", "--json", "--sysroot", opts.sysroot ?? sysroot, "--esp", opts.esp ?? esp, "--cmdline", `root=UUID=${ROOT_UUID} rw particle.deploy=${opts.booted ?? idA} particle.image=x`]);
  return { code: r.code, stderr: r.stderr, report: JSON.parse(r.stdout) };
};
const find = (report: any, check: string) => report.findings.filter((f: any) => f.check === check);
const upgradeRecord = () => join(sysroot, "particle/upgrade-check.json");
const tmpfs = (name: string, size: string): string => {
  const m = join(dir, name);
  mkdirSync(m);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", m]);
  mounted.push(m);
  return m;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "particle-doctor-"));
  sysroot = join(dir, "sysroot");
  esp = join(dir, "esp");
  mkdirSync(join(esp, "loader/entries"), { recursive: true });
  const a = tree("a", "A\n");
  const b = tree("b", "B\n");
  idA = stageJson(`dir:${a}`, sysroot).id;
  entryFor(sysroot, esp, idA, a);
  idB = stageJson(`dir:${b}`, sysroot).id;
  entryFor(sysroot, esp, idB, b);
  // Both entries blessed, as after good boots.
  for (const f of readdirSync(join(esp, "loader/entries"))) renameSync(join(esp, "loader/entries", f), join(esp, "loader/entries", f.replace(/\+\d+(-\d+)?\.conf$/, ".conf")));
});
afterAll(() => {
  for (const m of mounted.reverse()) execFileSync("umount", [m]);
  rmSync(dir, { recursive: true, force: true });
});

describe("particle doctor on a real sysroot", () => {
  it("reports the running kernel, its formats, space, and a clean store (schema-checked JSON)", () => {
    const { code, report } = doctor();
    expect(code).toBe(0);
    expect(report).toMatchObject({ apiVersion: "particle-os.org/v1", kind: "Doctor", booted: idA, upgradeCheck: null });
    expect(report.kernel.capabilities.release).toBe(release());
    expect(report.kernel.formats.map((v: any) => v.format)).toEqual(["composefs", "erofs", "squashfs"]);
    expect(report.store.path).toBe(join(sysroot, "particle"));
    expect(report.store.freeBytes).toBeGreaterThan(0);
    expect(report.esp.path).toBe(esp);
    expect(find(report, "entries")[0]).toMatchObject({ severity: "ok" });
    expect(find(report, "quick-verify")[0]).toMatchObject({ severity: "ok", message: expect.stringMatching(/^2 images checked, \d+ objects present$/) });
    expect(Number(find(report, "quick-verify")[0].message.match(/(\d+) objects/)[1])).toBeGreaterThan(0);
    expect(find(report, "boot-counting")[0]).toMatchObject({ severity: "ok" });
    expect(find(report, "upgrade-check")[0]).toMatchObject({ severity: "info", message: "last upgrade check: never" });
  });

  it("the text report leads with the kernel and gives what to do", () => {
    const r = particle(["doctor", "--sysroot", sysroot, "--esp", esp, "--cmdline", `particle.deploy=${idA}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^kernel ${release().replace(/[.+]/g, "\\$&")}\n`));
    expect(r.stdout).toMatch(/^formats: composefs (boots|cannot boot), erofs/m);
    expect(r.stdout).toMatch(/^\[info\] upgrade-check: last upgrade check: never\n {7}what to do: /m);
  });

  it("a staged update not yet finalized (B is newer and the default, A is booted)", () => {
    expect(find(doctor().report, "finalize")[0]).toMatchObject({ severity: "info", message: expect.stringMatching(new RegExp(`deployment ${idB} is staged`)) });
    expect(find(doctor({ booted: idB }).report, "finalize")[0]).toMatchObject({ severity: "ok" });
  });

  it("an upgrade-check record: read, and refused when broken", () => {
    writeFileSync(upgradeRecord(), JSON.stringify({ at: "2026-12-01T09:00:00Z", reference: "docker://example/os:stable", result: "current", digest: null, stagedId: null, error: null, policy: "check" }));
    const ok = doctor().report;
    expect(ok.upgradeCheck).toMatchObject({ result: "current" });
    expect(find(ok, "upgrade-check")[0]).toMatchObject({ severity: "ok" });
    writeFileSync(upgradeRecord(), "{not json");
    expect(find(doctor().report, "upgrade-check")[0]).toMatchObject({ severity: "warning", message: expect.stringMatching(/upgrade-check\.json: not valid JSON/) });
    unlinkSync(upgradeRecord());
  });

  it("an entry out of tries, and the booted entry not blessed yet", () => {
    const entries = join(esp, "loader/entries");
    const [fa, fb] = [idA, idB].map((id) => readdirSync(entries).find((f) => f.endsWith(`-${id}.conf`))!);
    renameSync(join(entries, fb!), join(entries, fb!.replace(/\.conf$/, "+0-3.conf")));
    renameSync(join(entries, fa!), join(entries, fa!.replace(/\.conf$/, "+2-1.conf")));
    const f = find(doctor().report, "boot-counting");
    expect(f.map((x: any) => x.severity)).toEqual(["warning", "info"]);
    expect(f[0].message).toMatch(new RegExp(`\\(deployment ${idB}\\) ran out of tries: it failed to boot 3 times`));
    renameSync(join(entries, fb!.replace(/\.conf$/, "+0-3.conf")), join(entries, fb!));
    renameSync(join(entries, fa!.replace(/\.conf$/, "+2-1.conf")), join(entries, fa!));
  });

  it("an entry whose deployment is gone, and a deployment without an entry: errors and exit 1", () => {
    const entries = join(esp, "loader/entries");
    const fb = readdirSync(entries).find((f) => f.endsWith(`-${idB}.conf`))!;
    const text = execFileSync("cat", [join(entries, fb)], { encoding: "utf8" });
    const ghost = fb.replace(`-${idB}.conf`, "-99.conf");
    writeFileSync(join(entries, ghost), text.replace(`particle.deploy=${idB}`, "particle.deploy=99"));
    renameSync(join(entries, fb), join(dir, fb));
    const { code, stderr, report } = doctor();
    expect(code).toBe(1);
    expect(stderr).toMatch(/doctor: 1 finding needs attention/);
    expect(find(report, "entry-without-deployment")).toEqual([expect.objectContaining({ severity: "error", message: expect.stringMatching(new RegExp(`${ghost.replace(/[.+]/g, "\\$&")} boots deployment 99, which is not in the store`)) })]);
    expect(find(report, "deployment-without-entry")).toEqual([expect.objectContaining({ severity: "info", message: expect.stringMatching(new RegExp(`^deployment ${idB} has no boot entry`)) })]);
    unlinkSync(join(entries, ghost));
    renameSync(join(dir, fb), join(entries, fb));
    expect(doctor().code).toBe(0);
  });

  it("quick verify: a missing object, a damaged image", () => {
    const m = readManifests(sysroot).find((x) => x.id === idB)!;
    const image = join(sysroot, "particle/images", `${m.imageDigest}.erofs`);
    const saved = join(dir, "image.saved");
    execFileSync("cp", ["-a", image, saved]);
    execFileSync("chmod", ["u+w", image]);
    const fd = execFileSync("sh", ["-c", `printf X | dd of=${image} bs=1 seek=1100 conv=notrunc status=none`]);
    expect(fd.length).toBe(0);
    let f = find(doctor().report, "quick-verify");
    expect(f).toEqual([expect.objectContaining({ severity: "error", message: expect.stringMatching(new RegExp(`^deployment ${idB}: image .* has digest [0-9a-f]{64}, the manifest says ${m.imageDigest}`)) })]);
    execFileSync("cp", ["-a", saved, image]);
    // The object of the file only B has.
    const objects = join(sysroot, "particle/objects");
    const digest = execFileSync("fsverity", ["digest", "--compact", join(dir, "b/extra")], { encoding: "utf8" }).trim();
    const obj = join(objects, digest.slice(0, 2), digest.slice(2));
    renameSync(obj, join(dir, "object.saved"));
    f = find(doctor().report, "quick-verify");
    expect(f).toEqual([expect.objectContaining({ severity: "error", message: `${obj}: object missing (a deployment's image points at it)` })]);
    renameSync(join(dir, "object.saved"), obj);
    expect(find(doctor().report, "quick-verify")[0].severity).toBe("ok");
  });

  it("no fs-verity on the store's filesystem, little space on the store and on the ESP (tmpfs)", () => {
    const small = tmpfs("small-sysroot", "64m");
    const smallEsp = tmpfs("small-esp", "8m");
    mkdirSync(join(smallEsp, "loader/entries"), { recursive: true });
    const a = join(dir, "a");
    const id = stageJson(`dir:${a}`, small).id;
    entryFor(small, smallEsp, id, a);
    // Something else fills the ESP up to 512 KiB short of full.
    const free = Number(execFileSync("df", ["-B1", "--output=avail", smallEsp], { encoding: "utf8" }).trim().split("\n")[1]);
    writeFileSync(join(smallEsp, "filler"), Buffer.alloc(free - 512 * 1024));
    const { report } = doctor({ sysroot: small, esp: smallEsp, booted: id });
    expect(report.kernel.storeFsVerity.support).toBe("no");
    expect(find(report, "store-fs-verity")[0]).toMatchObject({ severity: "warning", action: expect.stringMatching(/tune2fs -O verity/) });
    expect(find(report, "store-space")[0]).toMatchObject({ severity: "warning", message: expect.stringMatching(/free of 64\.0 MiB/) });
    expect(find(report, "esp-space")[0]).toMatchObject({ severity: "warning", message: expect.stringMatching(/less than the largest kernel and initramfs on it \(1\.1 MiB\)/) });
  });

  it("no store at the sysroot is an error naming it", () => {
    const { code, report } = doctor({ sysroot: join(dir, "nothing") });
    expect(code).toBe(1);
    expect(find(report, "store-space")[0]).toMatchObject({ severity: "error", message: `no store at ${join(dir, "nothing", "particle")} (the sysroot holds no particle/)` });
  });
});

describe("particle --version", () => {
  it("names the commit that last changed the binary's sources and its time, the formats and bootloaders", () => {
    const r = particle(["--version"]);
    expect(r.code).toBe(0);
    const commit = execFileSync("git", ["log", "-1", "--format=%h", "--abbrev=12", "--", "runtime", "boot", "package-lock.json"], { encoding: "utf8", cwd: join(__dirname, "../..") }).trim();
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^particle \d+\.\d+\.\d+$/);
    expect(lines[1]).toMatch(new RegExp(`^commit: ${commit}(-dirty)?$`));
    expect(lines[2]).toMatch(/^built: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(lines.slice(3)).toEqual(["formats: composefs, erofs, squashfs (auto picks per kernel)", "bootloaders: systemd-boot, grub"]);
  });
});
