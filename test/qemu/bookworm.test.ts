// Issue 14: an older kernel. A Debian bookworm guest (kernel 6.1: EROFS, but no overlayfs data-only
// lowers, so no composefs) is installed with the default --format auto, which must pick a full
// EROFS image for the tree's own kernel. It boots through OVMF and systemd-boot with the image's
// digest checked, refuses to stage composefs for that kernel (nothing staged), stages update B
// (again erofs), boots B and rolls back. Two boots, on bookworm's dracut 059 and systemd 252;
// `particle doctor` runs on the real 6.1 kernel. (A third boot, back on A, showed nothing the
// first did not, and that a rolled-back deployment boots is cycle.test.ts's: ~85 s saved.)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { B_MARKER, B_MARKER_TEXT, copyDisk, parse, prepareCycle, timing, type CycleInputs, type Parsed } from "./lib/cycle.ts";
import { runDisk } from "./lib/ovmf.ts";

// Boot 1 seals A's whole image (~600 MB) and writes B's (~600 MB) under TCG.
const BOOT_TIMEOUT = 1_200_000;
const TEST_TIMEOUT = 1_300_000;
// A cold cache: mmdebstrap of bookworm, the tree copy, dracut and the install.
const SETUP_TIMEOUT = 1_800_000;

const PRELUDE = `set -euo pipefail
j() { echo "JSON:$1:$(tr -d '\\n')"; }
kv() { echo "KV:$1:$2"; }
now() { cut -d' ' -f1 /proc/uptime; }
kv cmdline "$(cat /proc/cmdline)"
kv kernel "$(uname -r)"
kv root "$(findmnt -no FSTYPE,SOURCE /)"
tr -d '\\n' </run/particle-booted | j marker
`;

/** Boot 1, on A: doctor; composefs refused for this kernel; stage B from /dev/vdc with the default format. */
const STAGE_B = `${PRELUDE}
{ particle doctor --json || true; } | j doctor
mkdir -p /run/tree-b && mount -o ro /dev/vdc /run/tree-b
set +e
particle stage --format composefs dir:/run/tree-b >/run/refused.log 2>&1
kv refused-exit "$?"
set -e
kv refused "$(grep 'error:' /run/refused.log)"
kv deployments-after-refusal "$(ls /sysroot/particle/deploy | tr '\\n' ' ')"
kv entries-after-refusal "$(ls /efi/loader/entries | tr '\\n' ' ')"
t0=$(now)
particle stage dir:/run/tree-b 2>&1 | tee /run/stage.log
kv stage "$(grep 'format:' /run/stage.log)"
kv stage-seconds "$(awk "BEGIN{print $(now) - $t0}")"
umount /run/tree-b
particle status --json | j after
`;

/** Boot 2, on B: its file is there; doctor on the blessed B; roll back. */
const ON_B = `${PRELUDE}
kv marker-b "$(cat /${B_MARKER})"
particle status --json | j status
{ particle doctor --json || true; } | j doctor
particle rollback
particle status --json | j after
`;

describe("bookworm (kernel 6.1): the erofs fallback, booted, updated, rolled back (issue 14)", () => {
  let c: CycleInputs;
  let disk: string;
  const work = mkdtempSync(join(tmpdir(), "particle-bookworm-"));
  let idA: string;
  let idB: string;

  const boot = async (name: string, script: string, lateDisks: string[] = []): Promise<Parsed> => {
    const r = await runDisk({ name, disk, script, lateDisks, timeoutMs: BOOT_TIMEOUT });
    console.log(`${name}: ${timing(r)}`);
    return parse(r);
  };

  /** The root is the deployment's EROFS image on a loop device (no file-backed mounts before 6.12), its digest checked by the kernel. */
  const expectErofsRoot = (p: Parsed, id: string) => {
    expect(p.kv.kernel).toMatch(/^6\.1\./);
    expect(p.kv.root).toMatch(/^erofs\s+\/dev\/loop\d+$/);
    expect(p.json.marker).toMatchObject({ id, format: "erofs", verity: "require", imageCheck: "fs-verity", overlayVerity: "off" });
  };

  beforeAll(async () => {
    const t = Date.now();
    c = await prepareCycle((m) => console.log(m), "bookworm");
    console.log(`bookworm inputs ready in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    disk = copyDisk(c, join(work, "disk.img"));
  }, SETUP_TIMEOUT);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("install chose erofs for the tree's 6.1 kernel, and said why", () => {
    expect(c.installLog).toMatch(/format: kernel 6\.1\.\S+: erofs \(EROFS on a loop device\); not composefs: overlayfs data-only lower layers \(6\.5\): kernel 6\.1 < 6\.5/);
  });

  it("boots A as erofs with its digest checked; doctor explains the kernel; composefs is refused with nothing staged; B is staged as erofs", async () => {
    const a = await boot("bookworm-1-stage-b", STAGE_B, [c.treeB]);
    idA = a.json.marker.id;
    expectErofsRoot(a, idA);
    // The host that installed it has no fs-verity: particle-boot sealed the image on this first
    // boot, so the kernel measured it (imageCheck fs-verity above) and doctor finds it sealed.
    const doctor = a.json.doctor;
    expect(doctor.booted).toBe(idA);
    expect(doctor.kernel.formats.map((v: any) => [v.format, v.boots])).toEqual([["composefs", false], ["erofs", true], ["squashfs", true]]);
    expect(doctor.kernel.capabilities.overlayDataOnly).toMatchObject({ support: "no", why: "kernel 6.1 < 6.5" });
    expect(doctor.kernel.capabilities.erofsFileBacked.support).toBe("no");
    expect(doctor.kernel.storeFsVerity.support).toBe("yes");
    expect(doctor.findings.filter((f: any) => f.severity === "error")).toEqual([]);
    expect(a.kv["refused-exit"]).toBe("1");
    expect(a.kv.refused).toMatch(/--format composefs: the deployment's kernel 6\.1\.\S+ cannot boot a composefs root .*formats it can boot: erofs, squashfs .*nothing was staged/);
    expect(a.kv["deployments-after-refusal"]!.trim()).toBe(idA);
    expect(a.kv["entries-after-refusal"]!.trim().split(" ")).toHaveLength(1);
    expect(a.kv.stage).toMatch(/format: kernel 6\.1\.\S+: erofs \(EROFS on a loop device\)/);
    const after = a.json.after.status;
    expect(after.booted.id).toBe(idA);
    idB = after.staged.id;
    expect(idB).not.toBe(idA);
    expect(after.staged.format).toBe("erofs");
    expect(after.staged.bootEntry.file).toMatch(/\+3\.conf$/);
    console.log(`stage of B (erofs) in the bookworm guest: ${a.kv["stage-seconds"]} s`);
  }, TEST_TIMEOUT);

  it("reboots into B (erofs, checked) and rolls back", async () => {
    const b = await boot("bookworm-2-on-b", ON_B);
    expectErofsRoot(b, idB);
    expect(b.kv["marker-b"]).toBe(B_MARKER_TEXT.trim());
    expect(b.json.status.status.booted.id).toBe(idB);
    expect(b.json.status.status.rollback.id).toBe(idA);
    expect(b.json.after.spec.defaultDeployment).toBe(idA);
    expect(b.json.after.status.staged.id).toBe(idA);
    // Both boots were blessed by systemd-bless-boot (252): no counter left, nothing out of tries.
    expect(b.json.doctor.booted).toBe(idB);
    expect(b.json.doctor.findings.find((f: any) => f.check === "boot-counting")).toMatchObject({ severity: "ok" });
    expect(b.json.doctor.findings.filter((f: any) => f.severity === "error")).toEqual([]);
  }, TEST_TIMEOUT);
});
