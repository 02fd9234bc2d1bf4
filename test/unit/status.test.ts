import { describe, expect, it } from "vitest";
import { buildStatus, Host, API_VERSION, type EtcCarryOver } from "../../runtime/src/deployments/status.ts";
import { planRollback } from "../../runtime/src/deployments/rollback.ts";
import { bootedIdFromCmdline } from "../../runtime/src/deployments/booted.ts";
import { renderStatus } from "../../runtime/src/deployments/render-status.ts";
import { loadEntry, type LoadedEntry } from "../../runtime/src/bootloader/entries.ts";
import { sortEntries } from "../../runtime/src/bls/order.ts";
import { extraArgsOf, rootUuidOf } from "../../runtime/src/deployments/make-bootable.ts";
import { isUpdate } from "../../runtime/src/commands/finalize.ts";
import { stageBootTarget } from "../../runtime/src/deployments/where.ts";
import type { Manifest } from "../../runtime/src/manifest.ts";

const dig = (c: string) => c.repeat(64);
const manifest = (id: string, over: Partial<Manifest> = {}): Manifest => ({
  schema: 1, id, format: "composefs", imageDigest: dig(id), source: `dir:/trees/${id}`,
  created: `2026-11-2${id}T10:00:00.000Z`, version: "13", files: 10, bytes: 1000, kernel: "6.12.48-amd64", ...over,
});
const entry = (file: string, id: string, gen: number): LoadedEntry =>
  loadEntry(file, `title t${id}\nversion ${gen}\nsort-key particle\nlinux /particle/${dig("b")}/vmlinuz\ninitrd /particle/${dig(id)}/initrd.img\noptions root=UUID=u rw particle.deploy=${id} particle.image=${dig(id)}\n`)!;
const status = (entries: LoadedEntry[], bootedId?: string, ms = ["1", "2", "3"], etc = new Map<string, EtcCarryOver>()) =>
  buildStatus({ manifests: ms.map((i) => manifest(i)), entries: sortEntries(entries), loaderDefault: "particle-*", bootedId, etc, esp: "/efi" });
const ids = (h: Host) => ({ booted: h.status.booted?.id ?? null, staged: h.status.staged?.id ?? null, rollback: h.status.rollback?.id ?? null, other: h.status.other.map((d) => d.id), next: h.spec.defaultDeployment });

describe("status: roles from the booted deployment and the entry order", () => {
  it.each([
    ["fresh install seen from the host", [entry("particle-13-1+3.conf", "1", 1)], undefined, ["1"],
      { booted: null, staged: "1", rollback: null, other: [], next: "1" }],
    ["A booted, B staged", [entry("particle-13-1.conf", "1", 1), entry("particle-13-2+3.conf", "2", 2)], "1", ["1", "2"],
      { booted: "1", staged: "2", rollback: null, other: [], next: "2" }],
    ["B booted, A is the rollback", [entry("particle-13-1.conf", "1", 1), entry("particle-13-2.conf", "2", 2)], "2", ["1", "2"],
      { booted: "2", staged: null, rollback: "1", other: [], next: "2" }],
    ["B booted, rolled back to A", [entry("particle-13-1.conf", "1", 3), entry("particle-13-2.conf", "2", 2)], "2", ["1", "2"],
      { booted: "2", staged: "1", rollback: null, other: [], next: "1" }],
    ["B ran out of tries, A booted again", [entry("particle-13-1.conf", "1", 1), entry("particle-13-2+0-3.conf", "2", 2)], "1", ["1", "2"],
      { booted: "1", staged: null, rollback: "2", other: [], next: "1" }],
    ["three deployments, one without an entry", [entry("particle-13-1.conf", "1", 1), entry("particle-13-2.conf", "2", 2), entry("particle-13-3+3.conf", "3", 3)], "2", ["1", "2", "3", "4"],
      { booted: "2", staged: "3", rollback: "1", other: ["4"], next: "3" }],
    ["an entry naming a deployment that is gone", [entry("particle-13-9.conf", "9", 5), entry("particle-13-1.conf", "1", 1)], "1", ["1"],
      { booted: "1", staged: null, rollback: null, other: [], next: null }],
  ])("%s", (_n, entries, booted, ms, want) => expect(ids(status(entries, booted, ms))).toEqual(want));

  it("carries entry details and /etc conflicts", () => {
    const etc = new Map<string, EtcCarryOver>([["2", { from: "1", to: "2", at: "t", phase: "finalize", carried: 3, conflicts: [{ path: "foo", local: "file", image: "dir", savedAs: "particle/deploy/2/etc-conflicts/x/foo" }] }]]);
    const h = status([entry("particle-13-1.conf", "1", 1), entry("particle-13-2+2-1.conf", "2", 2)], "1", ["1", "2"], etc);
    expect(h.status.staged).toMatchObject({
      id: "2", imageDigest: dig("2"), source: "dir:/trees/2", version: "13", format: "composefs", kernel: "6.12.48-amd64",
      bootEntry: { file: "particle-13-2+2-1.conf", id: "particle-13-2.conf", title: "t2", generation: 2, triesLeft: 2, triesDone: 1 },
      etcConflicts: [{ path: "foo", local: "file", image: "dir" }],
    });
    expect(h.status.booted!.bootEntry!.triesLeft).toBeNull();
    expect(h.status.bootloader).toEqual({ type: "systemd-boot", esp: "/efi", defaultPattern: "particle-*", defaultEntry: "particle-13-2.conf", sealed: false });
  });

  it("the JSON has the documented shape and parses with the schema", () => {
    const h = status([entry("particle-13-1.conf", "1", 1)], "1", ["1"]);
    const back = Host.parse(JSON.parse(JSON.stringify(h)));
    expect(back.apiVersion).toBe(API_VERSION);
    expect(Object.keys(back.status).sort()).toEqual(["booted", "bootloader", "other", "rollback", "staged", "upgradeCheck"]);
    expect(Object.keys(back.status.booted!).sort()).toEqual(["bootEntry", "created", "etcConflicts", "format", "id", "imageDigest", "kernel", "source", "version"]);
  });

  it("renders a human view naming each role", () => {
    const text = renderStatus(status([entry("particle-13-1.conf", "1", 1), entry("particle-13-2+3.conf", "2", 2)], "1", ["1", "2"]));
    expect(text).toMatch(/● Booted: deployment 1 \(composefs\)/);
    expect(text).toMatch(/Staged \(next boot\): deployment 2/);
    expect(text).toMatch(/entry: particle-13-2\+3.conf, 3 tries left/);
    expect(text).toMatch(/default particle-\* → particle-13-2.conf/);
  });
});

describe("rollback plan", () => {
  it.each([
    ["calls off a staged deployment", [entry("particle-13-1.conf", "1", 1), entry("particle-13-2+3.conf", "2", 2)], "1", { target: "1", from: "2", why: "unstage" }],
    ["goes back to the previous deployment", [entry("particle-13-1.conf", "1", 1), entry("particle-13-2.conf", "2", 2)], "2", { target: "1", from: "2", why: "rollback" }],
    ["from the host, the next entry after the default", [entry("particle-13-1.conf", "1", 1), entry("particle-13-2.conf", "2", 2)], undefined, { target: "1", from: "2", why: "rollback" }],
  ])("%s", (_n, entries, booted, want) => expect(planRollback(status(entries, booted, ["1", "2"]))).toEqual(want));

  it("refuses with a single deployment", () => {
    expect(() => planRollback(status([entry("particle-13-1.conf", "1", 1)], "1", ["1"]))).toThrow(/no other deployment/);
  });
});

describe("finalize carries /etc only forward", () => {
  it.each([
    ["2026-11-25T10:00:00.000Z", "2026-11-26T10:00:00.000Z", true],
    ["2026-11-26T10:00:00.000Z", "2026-11-25T10:00:00.000Z", false],
    ["2026-11-26T10:00:00.000Z", "2026-11-26T10:00:00.000Z", false],
  ])("booted %s, staged %s → %s", (b, st, want) => expect(isUpdate({ created: b }, { created: st })).toBe(want));
});

describe("where stage writes boot entries", () => {
  it.each([
    ["a host, no --esp: nowhere", { sysroot: "/s", cmdline: "root=/dev/sda1" }, undefined],
    ["--esp given", { sysroot: "/s", esp: "/e", cmdline: "" }, { sysroot: "/s", esp: "/e", bootedId: undefined }],
    ["booted from particle, --esp given", { sysroot: "/s", esp: "/e", cmdline: "particle.deploy=4" }, { sysroot: "/s", esp: "/e", bootedId: "4" }],
  ])("%s", (_n, opts, want) => expect(stageBootTarget(opts)).toEqual(want));
});

describe("booted deployment and entry options", () => {
  it.each([
    ["BOOT_IMAGE=/x root=UUID=1 rw particle.deploy=3 particle.image=ab quiet\n", "3"],
    ["root=/dev/sda1 quiet", undefined],
    ["particle.deploy=../../etc", undefined],
    ['particle.deploy="2"', "2"],
  ])("%j → %j", (c, want) => expect(bootedIdFromCmdline(c)).toBe(want));

  it("extra args and the root UUID of an entry", () => {
    const o = `root=UUID=abcd rw particle.deploy=1 particle.image=${dig("a")} console=ttyS0 quiet`;
    expect(extraArgsOf(o)).toEqual(["console=ttyS0", "quiet"]);
    expect(rootUuidOf(o)).toBe("abcd");
    expect(rootUuidOf("root=/dev/vda2")).toBeUndefined();
  });
});
