// The upgrade timer's command, `particle upgrade --auto`, against a real OCI layout through the real
// skopeo: each policy of /etc/particle/upgrade.conf, the record status shows, and the failures it
// must record (a broken policy file, an image that went away) with the store unchanged.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { particle, stageJson } from "./lib/particle.ts";
import { tarBytes } from "./lib/oci-tar.ts";
import { writeImage } from "./lib/oci-layout.ts";

const base = mkdtempSync("/var/tmp/particle-auto-");
const layout = join(base, "layout");
const sysroot = join(base, "sysroot");
const conf = join(base, "upgrade.conf");
const REF = `oci:${layout}:stable`;
const FROM = ["--from", "1"];
const deployments = () => (existsSync(join(sysroot, "particle/deploy")) ? readdirSync(join(sysroot, "particle/deploy")).sort() : []);
const lastCheck = () => JSON.parse(readFileSync(join(sysroot, "particle/upgrade-check.json"), "utf8"));
const status = () => particle(["status", "--sysroot", sysroot, "--esp", join(base, "no-esp")]);

function push(version: string): string {
  return writeImage(layout, {
    tag: "stable",
    labels: { "org.opencontainers.image.version": version },
    layers: [{
      tar: tarBytes([
        { path: "etc/", type: "dir" },
        { path: "etc/os-release", data: `ID=test\nVERSION_ID=${version}\n` },
        { path: "usr/", type: "dir" },
        { path: "usr/bin/", type: "dir" },
        { path: `usr/bin/tool-${version}`, data: `#!/bin/sh\necho ${version}\n`, mode: 0o755 },
      ]),
      compression: "gzip",
    }],
  });
}
const auto = (policy?: string) => {
  if (policy === undefined) rmSync(conf, { force: true });
  else writeFileSync(conf, `[Upgrade]\nPolicy=${policy}\n`);
  return particle(["upgrade", "--auto", "--config", conf, "--sysroot", sysroot, ...FROM]);
};

let v1 = "";
beforeAll(() => {
  mkdirSync(sysroot);
  v1 = push("1");
  const j = stageJson(REF, sysroot);
  expect(j.id).toBe("1");
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("particle upgrade --auto", () => {
  it("records 'current' when the tag has not moved, and status says so", () => {
    expect(status().stdout).toContain("Last update check: never");
    const r = auto("stage");
    expect(r.code, r.stderr).toBe(0);
    expect(lastCheck()).toMatchObject({ result: "current", reference: REF, digest: v1, policy: "stage", stagedId: null, error: null });
    expect(status().stdout).toMatch(new RegExp(`Last update check: \\S+ \\(timer, policy stage\\): no update, ${REF.replace(/[/.]/g, "\\$&")} is still ${v1}`));
  });

  it("Policy=check records the update and stages nothing", () => {
    const v2 = push("2");
    const before = deployments();
    const r = auto("check");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`available: ${v2}`);
    expect(deployments()).toEqual(before);
    expect(lastCheck()).toMatchObject({ result: "available", digest: v2, policy: "check", stagedId: null });
    const json = JSON.parse(particle(["status", "--json", "--sysroot", sysroot, "--esp", join(base, "no-esp")]).stdout);
    expect(json.status.upgradeCheck).toMatchObject({ result: "available", digest: v2 });
  });

  it("no policy file: the default stages it; a second run finds it staged", () => {
    const r = auto();
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim().split("\n").at(-1)!;
    expect(deployments()).toContain(id);
    expect(lastCheck()).toMatchObject({ result: "staged", stagedId: id, policy: "stage" });
    const again = auto();
    expect(again.code, again.stderr).toBe(0);
    expect(deployments().filter((d) => d === id)).toHaveLength(1);
    expect(lastCheck()).toMatchObject({ result: "staged", stagedId: id });
  });

  it("Policy=reboot stages, and reboots only the running system (not a --sysroot)", () => {
    push("3");
    const r = auto("reboot");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/policy reboot: deployment \d+ is staged; not rebooting, .* is not the running system/);
    expect(lastCheck()).toMatchObject({ result: "staged", policy: "reboot" });
  });

  it("a broken policy file is a failed check: named, recorded, nothing staged", () => {
    push("4");
    const before = deployments();
    writeFileSync(conf, "[Upgrade]\nPolicy=sometimes\n");
    const r = particle(["upgrade", "--auto", "--config", conf, "--sysroot", sysroot, ...FROM]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${conf}: Policy="sometimes" is not one of check, stage, reboot`);
    expect(deployments()).toEqual(before);
    expect(lastCheck()).toMatchObject({ result: "failed", policy: null });
    expect(status().stdout).toContain(`failed: ${conf}: Policy="sometimes"`);
  });

  it("an image that went away is a failed check naming it; the store is unchanged", () => {
    const before = deployments();
    renameSync(layout, `${layout}.gone`);
    try {
      const r = auto("stage");
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(layout);
      expect(deployments()).toEqual(before);
      expect(lastCheck()).toMatchObject({ result: "failed", reference: REF, policy: "stage" });
      expect(lastCheck().error).toContain(layout);
      expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
    } finally {
      renameSync(`${layout}.gone`, layout);
    }
  });
});

describe("particle cleanup prunes the image caches", () => {
  it("keeps only the blobs and unpacked layers of kept deployments' images", () => {
    const esp = join(base, "esp");
    mkdirSync(join(esp, "loader/entries"), { recursive: true });
    const latest = deployments().map(Number).sort((a, b) => b - a)[0]!.toString();
    const m = JSON.parse(readFileSync(join(sysroot, "particle/deploy", latest, "deployment.json"), "utf8"));
    const blobs = () => readdirSync(join(sysroot, "particle/cache/oci/blobs/sha256")).sort();
    const layers = () => readdirSync(join(sysroot, "particle/cache/oci-layers")).sort();
    const before = blobs();
    // Four images of one layer each (manifest, config, layer): everything but the latest goes.
    expect(before.length).toBeGreaterThanOrEqual(9);
    const man = JSON.parse(readFileSync(join(sysroot, "particle/cache/oci/blobs/sha256", m.oci.manifestDigest.slice(7)), "utf8"));
    const want = [m.oci.manifestDigest, man.config.digest, ...man.layers.map((x: any) => x.digest)].map((d: string) => d.slice(7)).sort();
    const where = ["--sysroot", sysroot, "--esp", esp, "--cmdline", `particle.deploy=${latest}`];
    const dry = JSON.parse(particle(["cleanup", "--dry-run", "--json", ...where]).stdout);
    expect(dry.removedCacheBlobs).toBe(before.length - want.length);
    expect(blobs()).toEqual(before);
    const r = particle(["cleanup", "--json", ...where]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ kept: [latest], removedCacheBlobs: before.length - want.length });
    expect(blobs()).toEqual(want);
    expect(layers()).toEqual(man.layers.map((x: any) => `${x.digest.slice(7)}.json`));
    const index = JSON.parse(readFileSync(join(sysroot, "particle/cache/oci/index.json"), "utf8"));
    expect(index.manifests.map((x: any) => x.digest)).toEqual([m.oci.manifestDigest]);
    expect(particle(["verify", "--sysroot", sysroot]).code).toBe(0);
    // The pruned cache is still a layout skopeo writes into: the tag's newer image (v4) stages.
    const again = particle(["stage", REF, "--sysroot", sysroot, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).oci.sourceDigest).toBe(JSON.parse(readFileSync(join(layout, "index.json"), "utf8")).manifests.at(-1).digest);
    expect(particle(["verify", "--sysroot", sysroot]).code).toBe(0);
  });
});
