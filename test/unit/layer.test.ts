import { describe, expect, it } from "vitest";
import {
  aptCommands, aptErrors, CHROOT_APT_ETC, baseOf, checkPackageName, headersPackage, needsHeaders, planLayer, planReapply, simulatedInstalls,
} from "../../runtime/src/layer/plan.ts";
import { parseManifest, renderManifest, type Manifest } from "../../runtime/src/manifest.ts";
import { aptConfigFor, LIVE_APT_ETC } from "../../runtime/src/layer/apt-config.ts";
import { buildStatus } from "../../runtime/src/deployments/status.ts";
import { renderStatus } from "../../runtime/src/deployments/render-status.ts";

const dig = (c: string) => c.repeat(64);
const m = (id: string, over: Partial<Manifest> = {}): Manifest => ({
  schema: 1, id, format: "composefs", imageDigest: dig(id), source: `dir:/trees/${id}`,
  created: "2026-11-26T00:00:00.000Z", files: 10, bytes: 1000, kernel: "6.12.117+deb13-amd64", ...over,
});
const base1 = { id: "1", imageDigest: dig("1") };
const layered2 = m("2", { base: base1, layered: ["hello", "jq"] });

describe("planLayer: the package set and the lower layer", () => {
  it.each([
    ["install onto an unlayered deployment", m("1"), [m("1")], { install: ["hello"], remove: [] },
      { lower: "1", mode: "rebase", packages: ["hello"], aptInstall: ["hello"], aptPurge: [], added: ["hello"], removed: [] }],
    ["install onto a layered one: the whole set onto its base", layered2, [m("1"), layered2], { install: ["tree"], remove: [] },
      { lower: "1", mode: "rebase", packages: ["hello", "jq", "tree"], aptInstall: ["hello", "jq", "tree"], aptPurge: [], added: ["tree"], removed: [] }],
    ["remove: the base plus the rest, nothing to purge", layered2, [m("1"), layered2], { install: [], remove: ["jq"] },
      { lower: "1", mode: "rebase", packages: ["hello"], aptInstall: ["hello"], aptPurge: [], added: [], removed: ["jq"] }],
    ["remove the last ones: the base image as it is", layered2, [m("1"), layered2], { install: [], remove: ["jq", "hello"] },
      { lower: "1", mode: "rebase", packages: [], aptInstall: [], aptPurge: [], added: [], removed: ["hello", "jq"] }],
    ["base cleaned up: change the layered tree in place", layered2, [layered2], { install: ["tree"], remove: ["jq"] },
      { lower: "2", mode: "incremental", packages: ["hello", "tree"], aptInstall: ["tree"], aptPurge: ["jq"], added: ["tree"], removed: ["jq"] }],
    ["a deployment with the base's id but another image is not the base", layered2, [m("1", { imageDigest: dig("9") }), layered2], { install: ["tree"], remove: [] },
      { lower: "2", mode: "incremental", packages: ["hello", "jq", "tree"], aptInstall: ["tree"], aptPurge: [], added: ["tree"], removed: [] }],
    ["duplicates and order do not matter", m("1"), [m("1")], { install: ["zsh", "bash-completion", "zsh"], remove: [] },
      { lower: "1", mode: "rebase", packages: ["bash-completion", "zsh"], aptInstall: ["bash-completion", "zsh"], aptPurge: [], added: ["bash-completion", "zsh"], removed: [] }],
  ] as const)("%s", (_n, from, ds, request, want) => {
    const p = planLayer({ from, deployments: ds, request: { install: [...request.install], remove: [...request.remove] } });
    expect({ lower: p.lower, mode: p.mode, packages: p.packages, aptInstall: p.aptInstall, aptPurge: p.aptPurge, added: p.added, removed: p.removed }).toEqual(want);
    expect(p.from).toBe(from.id);
    expect(p.base).toEqual(base1);
  });

  it.each([
    ["already layered", layered2, { install: ["hello"], remove: [] }, /already layered on deployment 2: hello/],
    ["removing a base package", layered2, { install: [], remove: ["bash"] }, /not layered on deployment 2: bash \(layered: hello jq; packages of the base image/],
    ["install and remove at once", layered2, { install: ["x1"], remove: ["x1"] }, /both install and remove x1/],
    ["nothing asked", layered2, { install: [], remove: [] }, /no packages given/],
    ["an option smuggled in as a name", m("1"), { install: ["--allow-unauthenticated"], remove: [] }, /not a Debian package name/],
    ["a version pin", m("1"), { install: ["hello=2.10-3"], remove: [] }, /not a Debian package name/],
  ])("refuses: %s", (_n, from, request, err) => {
    expect(() => planLayer({ from, deployments: [m("1"), from], request })).toThrow(err);
  });
});

describe("package names", () => {
  it.each(["hello", "g++", "libstdc++6", "linux-headers-6.12.117+deb13-amd64", "libc6:i386", "acpi-call-dkms"])("accepts %s", (n) => expect(() => checkPackageName(n)).not.toThrow());
  it.each(["", "a", "Hello", "-y", "hello world", "../x", "pkg/trixie", "x;rm"])("refuses %j", (n) => expect(() => checkPackageName(n)).toThrow(/not a Debian package name/));
});

describe("planReapply: the same set onto a new base (particle upgrade)", () => {
  it("installs the previous deployment's set onto the new base, recorded as its base", () => {
    const p = planReapply({ base: m("7"), previous: layered2 })!;
    expect(p).toMatchObject({ from: "7", lower: "7", mode: "rebase", base: { id: "7", imageDigest: dig("7") }, packages: ["hello", "jq"], aptInstall: ["hello", "jq"], aptPurge: [] });
  });
  it("nothing layered: nothing to do", () => expect(planReapply({ base: m("7"), previous: m("1") })).toBeUndefined());
  it("refuses a layered base", () => expect(() => planReapply({ base: layered2, previous: layered2 })).toThrow(/itself layered/));
});

describe("apt command lines", () => {
  it("install: update, a simulation to resolve, then the install, never recommends, never prompting", () => {
    const c = aptCommands({ aptInstall: ["hello"], aptPurge: [] }, ["linux-headers-6.12.117+deb13-amd64"]);
    expect(c.update).toEqual(["apt-get", "-q", "update"]);
    expect(c.purge).toEqual([]);
    expect(c.install!.slice(-3)).toEqual(["install", "hello", "linux-headers-6.12.117+deb13-amd64"]);
    expect(c.install).toContain("--no-install-recommends");
    expect(c.install).toContain("-y");
    expect(c.simulate).toContain("--simulate");
    expect(c.install).toContain("Dpkg::Options::=--force-confold");
  });
  it("purge: the packages, then what only they pulled in", () => {
    const c = aptCommands({ aptInstall: [], aptPurge: ["jq"] });
    expect(c.install).toBeUndefined();
    expect(c.simulate).toBeUndefined();
    expect(c.purge.map((x) => x.slice(-2))).toEqual([["purge", "jq"], ["autoremove", "--purge"]]);
  });
  it("a booted system's apt configuration: every apt-get run reads it, none without it", () => {
    const c = aptCommands({ aptInstall: ["hello"], aptPurge: ["jq"] }, [], CHROOT_APT_ETC);
    for (const argv of [c.update, c.simulate!, c.install!, ...c.purge]) expect(argv.join(" ")).toContain(`-o Dir::Etc=${CHROOT_APT_ETC} `);
    const plain = aptCommands({ aptInstall: ["hello"], aptPurge: ["jq"] });
    for (const argv of [plain.update, plain.simulate!, plain.install!, ...plain.purge]) expect(argv.join(" ")).not.toContain("Dir::Etc");
  });
});

describe("DKMS: headers for the deployment's kernel", () => {
  const sim = "NOTE: This is only a simulation!\nInst make (4.4.1-2 Debian:13 [amd64])\nInst dkms (3.2.2-1~deb13u1 Debian:13 [all])\nInst acpi-call-dkms (1.2.2-2.1 Debian:13 [all])\nConf make (4.4.1-2 Debian:13 [amd64])\n";
  it("reads the packages a simulation installs", () => expect(simulatedInstalls(sim)).toEqual(["make", "dkms", "acpi-call-dkms"]));
  it.each([
    ["dkms comes with the layer", { simulated: ["dkms"], dkmsInTree: false, headersInTree: false }, true],
    ["dkms already in the tree", { simulated: ["hello"], dkmsInTree: true, headersInTree: false }, true],
    ["headers already there", { simulated: ["dkms"], dkmsInTree: true, headersInTree: true }, false],
    ["no dkms at all", { simulated: ["hello"], dkmsInTree: false, headersInTree: false }, false],
    ["a package merely named like dkms", { simulated: ["dkms-helper"], dkmsInTree: false, headersInTree: false }, false],
  ])("%s", (_n, input, want) => expect(needsHeaders(input)).toBe(want));
  it("names the headers after the tree's kernel, not the running one", () => expect(headersPackage("6.12.117+deb13-amd64")).toBe("linux-headers-6.12.117+deb13-amd64"));
});

describe("apt errors in the message", () => {
  it("keeps apt's E: lines", () => {
    const stderr = "W: Some warning\nE: Unable to locate package nosuch\nE: Unable to locate package other\n";
    expect(aptErrors(stderr, "Reading package lists...\n")).toBe("E: Unable to locate package nosuch\nE: Unable to locate package other");
  });
  it("keeps dpkg's errors from stdout", () => {
    const stdout = "Setting up foo (1.0) ...\ndpkg: error processing package foo (--configure):\n installed foo package post-installation script subprocess returned error exit status 1\nErrors were encountered while processing:\n foo\n";
    expect(aptErrors("E: Sub-process /usr/bin/dpkg returned an error code (1)\n", stdout)).toBe(
      "E: Sub-process /usr/bin/dpkg returned an error code (1)\ndpkg: error processing package foo (--configure):\nErrors were encountered while processing:");
  });
  it("no E: line: the last lines", () => expect(aptErrors("", "a\nb\n\nc\n")).toBe("a\nb\nc"));
});

describe("the manifest and status record the layers", () => {
  it("round-trips base and layered; older manifests have neither", () => {
    expect(parseManifest(renderManifest(layered2), "x")).toEqual(layered2);
    const old = parseManifest(renderManifest(m("1")), "x");
    expect(old.base).toBeUndefined();
    expect(baseOf(old)).toEqual(base1);
    expect(baseOf(layered2)).toEqual(base1);
  });
  it("status shows them on layered deployments only", () => {
    const h = buildStatus({ manifests: [m("1"), layered2], entries: [], bootedId: "2", etc: new Map() });
    expect(h.status.booted).toMatchObject({ id: "2", base: base1, layered: ["hello", "jq"] });
    expect(h.status.other[0]).not.toHaveProperty("layered");
    expect(renderStatus(h)).toContain("    layered: hello jq (on deployment 1)");
  });
});

describe("which apt configuration a layer run uses", () => {
  it("the live /etc/apt on a system booted from particle, the tree's own elsewhere, --apt-config when given", () => {
    expect(aptConfigFor({}, "root=/dev/vda2 particle.deploy=3 particle.image=" + dig("a"))).toBe(LIVE_APT_ETC);
    expect(aptConfigFor({}, "root=/dev/vda2 quiet")).toBeUndefined();
    // --cmdline describes another sysroot (a test, a disk being repaired): this host's /etc/apt is not its.
    expect(aptConfigFor({ cmdline: "root=/dev/vda2 particle.deploy=3 particle.image=" + dig("a") }, "root=/dev/vda2 particle.deploy=3")).toBeUndefined();
    expect(aptConfigFor({ cmdline: "", aptConfig: "/" })).toBe("/");
    expect(() => aptConfigFor({ cmdline: "", aptConfig: "/nonexistent/apt" })).toThrow(/--apt-config \/nonexistent\/apt: no such directory/);
  });
});
