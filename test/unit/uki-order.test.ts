import { describe, expect, it } from "vitest";
import { applyRenames, orderUkis, parseUkiName, planUkiPromote } from "../../runtime/src/seal/uki-order.ts";
import { buildStatus, type Host } from "../../runtime/src/deployments/status.ts";
import { planRollback } from "../../runtime/src/deployments/rollback.ts";
import type { Manifest } from "../../runtime/src/manifest.ts";

// Image digests whose 12-digit prefixes are in the UKI names below.
const dig = (c: string) => c.repeat(64);
const uki = (version: string, c: string, counter = "") => `particle-${version}-${c.repeat(12)}${counter}.efi`;
const manifest = (id: string, c: string, day: string): Manifest => ({
  schema: 1, id, format: "composefs", imageDigest: dig(c), source: `dir:/trees/${id}`,
  created: `2026-11-${day}T10:00:00.000Z`, version: id, files: 10, bytes: 1000, kernel: "6.12.48-amd64",
});
const MS = [manifest("1", "a", "20"), manifest("2", "b", "21"), manifest("3", "c", "22")];
const sealedStatus = (ukis: string[], bootedId?: string): Host =>
  buildStatus({ manifests: MS, entries: [], loaderDefault: "particle-*", bootedId, etc: new Map(), esp: "/efi", sealed: true, ukis });
const roles = (h: Host) => ({ booted: h.status.booted?.id ?? null, staged: h.status.staged?.id ?? null, rollback: h.status.rollback?.id ?? null, next: h.spec.defaultDeployment });

describe("sealed UKI names", () => {
  it.each([
    [uki("2", "b", "+3"), { id: `particle-2-${"b".repeat(12)}.efi`, triesLeft: 3, triesDone: 0, version: "2" }],
    [uki("2", "b", "+0-3"), { id: `particle-2-${"b".repeat(12)}.efi`, triesLeft: 0, triesDone: 3, version: "2" }],
    [uki("1.5_rc1", "a"), { id: `particle-1.5_rc1-${"a".repeat(12)}.efi`, triesLeft: undefined, triesDone: undefined, version: "1.5_rc1" }],
  ])("%s", (file, want) => {
    const n = parseUkiName(file)!;
    expect({ id: n.name.id, triesLeft: n.name.triesLeft, triesDone: n.name.triesDone, version: n.version }).toEqual(want);
  });
  it.each(["debian-6.12.efi", "particle-2-short.efi", "particle-2-bbbbbbbbbbbb.conf"])("%s is not ours", (f) => expect(parseUkiName(f)).toBeUndefined());

  it("boot order: highest IMAGE_VERSION first, entries with no tries left last", () => {
    expect(orderUkis([uki("1", "a"), uki("10", "c", "+0-3"), uki("2", "b", "+2-1"), "other.efi"]).map((u) => u.name.file))
      .toEqual([uki("2", "b", "+2-1"), uki("1", "a"), uki("10", "c", "+0-3")]);
  });
});

describe("making a sealed UKI the default (planUkiPromote)", () => {
  it.each([
    ["rollback from a blessed v2 to v1: v2 gets no tries left", [uki("1", "a"), uki("2", "b")], "a",
      [{ from: uki("2", "b"), to: uki("2", "b", "+0") }]],
    ["a staged v2 called off while it still counts: its tries done are kept", [uki("1", "a"), uki("2", "b", "+2-1")], "a",
      [{ from: uki("2", "b", "+2-1"), to: uki("2", "b", "+0-1") }]],
    ["already first: nothing to do", [uki("1", "a", "+0"), uki("2", "b")], "b", []],
    ["back to a UKI that ran out of tries: fresh tries, then the one ahead of it", [uki("1", "a", "+0-3"), uki("2", "b")], "a",
      [{ from: uki("1", "a", "+0-3"), to: uki("1", "a", "+3") }, { from: uki("2", "b"), to: uki("2", "b", "+0") }]],
    ["the middle of three: only the newer one steps back", [uki("1", "a"), uki("2", "b"), uki("3", "c", "+3")], "b",
      [{ from: uki("3", "c", "+3"), to: uki("3", "c", "+0") }]],
    ["the oldest of three: both newer ones step back", [uki("3", "c"), uki("1", "a"), uki("2", "b")], "a",
      [{ from: uki("3", "c"), to: uki("3", "c", "+0") }, { from: uki("2", "b"), to: uki("2", "b", "+0") }]],
  ])("%s", (_n, files, c, want) => {
    const r = planUkiPromote(files, dig(c));
    expect(r).toEqual(want);
    expect(orderUkis(applyRenames(files, r))[0]!.digestPrefix).toBe(c.repeat(12));
  });

  it("names the image when no UKI pins it", () => {
    expect(() => planUkiPromote([uki("1", "a")], dig("d"))).toThrow(`no UKI under EFI/Linux pins image ${dig("d")}`);
  });
});

describe("status and rollback on a sealed machine (Type #2 entries)", () => {
  it.each([
    ["installed, not booted yet", [uki("1", "a", "+3")], undefined, { booted: null, staged: "1", rollback: null, next: "1" }],
    ["v1 booted, v2 staged", [uki("1", "a"), uki("2", "b", "+3")], "1", { booted: "1", staged: "2", rollback: null, next: "2" }],
    ["v2 booted, v1 the rollback", [uki("1", "a"), uki("2", "b")], "2", { booted: "2", staged: null, rollback: "1", next: "2" }],
    ["v2 booted, rolled back to v1", [uki("1", "a"), uki("2", "b", "+0")], "2", { booted: "2", staged: "1", rollback: null, next: "1" }],
    ["v2 ran out of tries, v1 booted", [uki("1", "a"), uki("2", "b", "+0-3")], "1", { booted: "1", staged: null, rollback: "2", next: "1" }],
  ])("%s", (_n, ukis, booted, want) => expect(roles(sealedStatus(ukis, booted))).toEqual(want));

  it("the booted UKI's entry in status", () => {
    expect(sealedStatus([uki("1", "a"), uki("2", "b", "+2-1")], "2").status.booted!.bootEntry).toEqual({
      file: uki("2", "b", "+2-1"), id: `particle-2-${"b".repeat(12)}.efi`, title: null, generation: null, triesLeft: 2, triesDone: 1, options: "(sealed in the signed UKI)",
    });
  });

  it.each([
    ["from a booted v2 to v1", [uki("1", "a"), uki("2", "b")], "2", { target: "1", from: "2", why: "rollback" }, [{ from: uki("2", "b"), to: uki("2", "b", "+0") }]],
    ["a staged v2 called off", [uki("1", "a"), uki("2", "b", "+3")], "1", { target: "1", from: "2", why: "unstage" }, [{ from: uki("2", "b", "+3"), to: uki("2", "b", "+0") }]],
  ])("rollback %s: the plan, then the renames", (_n, ukis, booted, want, renames) => {
    const plan = planRollback(sealedStatus(ukis, booted));
    expect(plan).toEqual(want);
    const target = MS.find((m) => m.id === plan.target)!;
    const r = planUkiPromote(ukis, target.imageDigest);
    expect(r).toEqual(renames);
    expect(roles(sealedStatus(applyRenames(ukis, r), booted)).next).toBe(plan.target);
  });
});
