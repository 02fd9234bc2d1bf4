// Crash campaigns for every writing command (issue 12, part 2): each command is killed with SIGKILL
// at random moments of its run and at every checkpoint it passes (PARTICLE_DIE_AT), in a fresh
// copy of its world each time; after each kill and after the next command the invariants of
// lib/invariants.ts must hold. Sizes: PARTICLE_CRASH_KILLS random kills per command (default 25),
// PARTICLE_CRASH_CHECKPOINTS checkpoint kills per command (default: all of them);
// PARTICLE_CRASH_SEED replays a campaign (the seed is printed first). Needs root.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { particleOk } from "../host/lib/particle.ts";
import { esp as espImage, makeTinyTree, withRoot } from "../host/install-helpers.ts";
import { tarDir, writeImage } from "../host/lib/oci-layout.ts";
import { deterministicBytes } from "../host/lib/fixture.ts";
import { runCampaign, type CampaignStats, type CrashCase } from "./lib/campaign.ts";
import { campaignSeed, prng } from "./lib/prng.ts";
import { checkInvariants, defaultDeployment, grubNewDefaultCounted, release, type World } from "./lib/invariants.ts";
import { booted, debianTree, installedWorld, stageBooted, treeA, variant } from "./lib/worlds.ts";
import { makeRepo, PROBE } from "./lib/deb.ts";
import { guestBase } from "../qemu/lib/guest.ts";

const count = (name: string, dflt: number | undefined): number | undefined => {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  if (!/^\d+$/.test(v)) throw new Error(`${name}=${v}: expected a number`);
  return Number(v);
};
const KILLS = count("PARTICLE_CRASH_KILLS", 25)!;
const CHECKPOINTS = count("PARTICLE_CRASH_CHECKPOINTS", undefined);
const SEED = campaignSeed();
const FILES = 300;
const NO_VERIFY = "--insecure-no-verify-signatures";

let dir: string;
let trees: { a: string; b: string; c: string; d: string; e: string };
let tarB: string;
let layout: string;
let initrd: string;
const results: CampaignStats[] = [];

beforeAll(() => {
  console.log(`crash campaign: seed ${SEED} (replay with PARTICLE_CRASH_SEED=${SEED}), ${KILLS} random kills and ${CHECKPOINTS ?? "all"} checkpoint kills per command`);
  dir = mkdtempSync("/var/tmp/particle-crash-");
  // Hundreds of worlds are copied and removed: on a tmpfs that costs milliseconds, not seconds. A
  // SIGKILL tests what the page cache holds (power cuts are the QEMU tier's), so nothing is lost.
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=6g,mode=0755", "particle-crash", dir]);
  const t = (n: string) => join(dir, "trees", n);
  trees = { a: t("a"), b: t("b"), c: t("c"), d: t("d"), e: t("e") };
  treeA(trees.a, FILES);
  variant(trees.a, trees.b, 2, FILES);
  variant(trees.a, trees.c, 3, FILES / 3);
  variant(trees.a, trees.d, 4, FILES / 3);
  variant(trees.a, trees.e, 5, FILES / 3);
  tarB = join(dir, "b.tar");
  execFileSync("tar", ["--create", "--file", tarB, "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", trees.b, "."]);
  layout = join(dir, "layout");
  writeImage(layout, { tag: "a", layers: [{ tar: tarDir(trees.a), compression: "gzip" }] });
  writeImage(layout, { tag: "b", layers: [{ tar: tarDir(trees.b), compression: "gzip" }] });
  initrd = join(dir, "initrd.img");
  writeFileSync(initrd, deterministicBytes(300_000, 9));
}, 300_000);

afterAll(() => {
  if (results.length) {
    const rows = results.map(row);
    console.log(`crash campaign (seed ${SEED}):\n${rows.join("\n")}`);
  }
  if (dir) {
    release(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});

const row = (r: CampaignStats) => `  ${r.name.padEnd(22)} random ${r.random.killed}/${r.random.tried} killed (${r.random.finished} finished first), checkpoints ${r.checkpoints.killed}/${r.checkpoints.tried} (${r.checkpoints.steps} steps); survived ${r.survived}, failed ${r.failures.length}; ${r.seconds.toFixed(0)} s`;

/** Builds the template of a case in its own directory, then runs its campaign and reports. */
async function campaign(name: string, build: (dir: string) => Omit<CrashCase, "name">): Promise<void> {
  const tdir = join(dir, "templates", name);
  mkdirSync(tdir, { recursive: true });
  const c: CrashCase = { name, ...build(tdir) };
  const work = join(dir, "kills");
  mkdirSync(work, { recursive: true });
  const stats = await runCampaign(c, work, { kills: KILLS, checkpoints: CHECKPOINTS, rand: prng(SEED, name), log: (m) => console.log(m) });
  results.push(stats);
  console.log(`done:${row(stats)}`);
  expect(stats.failures).toEqual([]);
  expect(stats.random.killed + stats.checkpoints.killed).toBeGreaterThan(0);
}

const T = 3_600_000;

describe("crash campaign: stage", () => {
  it("stage dir: (with its boot entry)", () => campaign("stage-dir", (d) => {
    installedWorld(d, trees.a);
    return { always: ["deployment:mounted#1", "mount:overlay#1"], template: tw(d), command: (w) => ["stage", `dir:${trees.b}`, ...booted(w, "1")], next: (w) => ["stage", `dir:${trees.c}`, ...booted(w, "1")] };
  }), T);
  it("stage tar:", () => campaign("stage-tar", (d) => {
    installedWorld(d, trees.a);
    return { template: tw(d), command: (w) => ["stage", `tar:${tarB}`, ...booted(w, "1")], next: (w) => ["stage", `tar:${tarB}`, ...booted(w, "1")] };
  }), T);
  it("stage oci:", () => campaign("stage-oci", (d) => {
    installedWorld(d, trees.a);
    return { template: tw(d), command: (w) => ["stage", `oci:${layout}:b`, NO_VERIFY, ...booted(w, "1")], next: (w) => ["stage", `oci:${layout}:b`, NO_VERIFY, ...booted(w, "1")] };
  }), T);
});

describe("crash campaign: image commands", () => {
  it("switch", () => campaign("switch", (d) => {
    installedWorld(d, trees.a);
    return { template: tw(d), command: (w) => ["switch", `oci:${layout}:b`, NO_VERIFY, ...booted(w, "1")], next: (w) => ["switch", `oci:${layout}:b`, NO_VERIFY, ...booted(w, "1")] };
  }), T);
  it("upgrade", () => campaign("upgrade", (d) => {
    // Deployment 1 tracks oci:LAYOUT:track, which then moves from tree A's image to tree B's.
    const own = join(d, "..", "upgrade-layout");
    writeImage(own, { tag: "track", layers: [{ tar: tarDir(trees.a), compression: "gzip" }] });
    installedWorld(d, trees.a, { source: `oci:${own}:track`, stageArgs: [NO_VERIFY] });
    writeImage(own, { tag: "track", layers: [{ tar: tarDir(trees.b), compression: "gzip" }] });
    return {
      always: ["entry:written#1", "stage:deployment-renamed#1"], template: tw(d),
      command: (w) => ["upgrade", NO_VERIFY, ...booted(w, "1")], next: (w) => ["upgrade", NO_VERIFY, ...booted(w, "1")],
      // However the first one died, after the next upgrade the update is the default.
      checkAfterNext: (w) => (defaultDeployment(w) === "1" ? ["after the next upgrade, deployment 1 is still the default: the update never became bootable"] : []),
    };
  }), T);
});

describe("crash campaign: boot entries and deployments", () => {
  const stagedWorld = (d: string, grub = false): World => {
    const w = installedWorld(d, trees.a, { grub });
    stageBooted(w, "1", `dir:${trees.b}`);
    return w;
  };
  it("rollback", () => campaign("rollback", (d) => {
    stagedWorld(d);
    return { template: tw(d), command: (w) => ["rollback", ...booted(w, "1")], next: (w) => ["rollback", ...booted(w, "1")] };
  }), T);
  it("kargs", () => campaign("kargs", (d) => {
    stagedWorld(d);
    return { template: tw(d), command: (w) => ["kargs", "--append", "quiet", "--delete", "console=ttyS0", ...booted(w, "1")], next: (w) => ["kargs", "--append", "loglevel=3", ...booted(w, "1")] };
  }), T);
  it("cleanup", () => campaign("cleanup", (d) => {
    const w = stagedWorld(d);
    for (const t of [trees.c, trees.d, trees.e]) stageBooted(w, "1", `dir:${t}`);
    return { template: tw(d), command: (w) => ["cleanup", ...booted(w, "1")], next: (w) => ["cleanup", ...booted(w, "1")] };
  }), T);
  it("finalize", () => campaign("finalize", (d) => {
    const w = stagedWorld(d);
    // Local /etc changes of the booted deployment, made after staging: finalize carries them over.
    const up = join(w.sysroot, "particle/deploy/1/etc/upper");
    for (let i = 0; i < 50; i++) writeFileSync(join(up, `local-${i}`), `edited ${i}\n`);
    writeFileSync(join(up, "hostname"), "edited\n");
    return { always: ["etc-carry:copied#1", "etc-carry:swapped#1"], template: tw(d), command: (w) => ["finalize", ...booted(w, "1")], next: (w) => ["finalize", ...booted(w, "1")] };
  }), T);
});

describe("crash campaign: GRUB env writes", () => {
  const grubWorld = (d: string): World => {
    const w = installedWorld(d, trees.a, { grub: true });
    stageBooted(w, "1", `dir:${trees.b}`);
    return w;
  };
  it("stage on a GRUB ESP (counting starts)", () => campaign("grub-stage", (d) => {
    installedWorld(d, trees.a, { grub: true });
    return {
      always: ["grub:env-before-menu#1"], template: tw(d), command: (w) => ["stage", `dir:${trees.b}`, ...booted(w, "1")], next: (w) => ["stage", `dir:${trees.c}`, ...booted(w, "1")],
      check: grubNewDefaultCounted,
    };
  }), T);
  it("rollback (counting stops)", () => campaign("grub-rollback", (d) => {
    grubWorld(d);
    return { template: tw(d), command: (w) => ["rollback", ...booted(w, "1")], next: (w) => ["rollback", ...booted(w, "1")] };
  }), T);
  it("rollback --once (next_entry)", () => campaign("grub-rollback-once", (d) => {
    grubWorld(d);
    return { template: tw(d), command: (w) => ["rollback", "--once", ...booted(w, "1")], next: (w) => ["rollback", "--once", ...booted(w, "1")] };
  }), T);
  it("bless", () => campaign("grub-bless", (d) => {
    grubWorld(d);
    // Booted into the counted deployment 2: bless marks it good.
    return { template: tw(d), command: (w) => ["bless", ...booted(w, "2")], next: (w) => ["bless", ...booted(w, "2")] };
  }), T);
});

describe("crash campaign: layer (apt from a local repository)", () => {
  let debian: string;
  let kernel: string;
  beforeAll(async () => {
    debian = join(dir, "trees", "debian");
    const repo = makeRepo(join(dir, "repo"), join(dir, "repo-work"));
    kernel = debianTree(await guestBase(), debian, repo);
  }, 900_000);
  it("layer install", () => campaign("layer-install", (d) => {
    installedWorld(d, debian, { kernel });
    return { template: tw(d), command: (w) => ["layer", "install", PROBE, ...booted(w, "1")], next: (w) => ["layer", "install", PROBE, "--from", "1", ...booted(w, "1")] };
  }), T);
  it("layer remove", () => campaign("layer-remove", (d) => {
    const w = installedWorld(d, debian, { kernel });
    particleOk(["layer", "install", PROBE, ...booted(w, "1")]);
    return { template: tw(d), command: (w) => ["layer", "remove", PROBE, "--from", "2", ...booted(w, "1")], next: (w) => ["layer", "remove", PROBE, "--from", "2", ...booted(w, "1")] };
  }), T);
});

describe("crash campaign: install --to-disk", () => {
  it("install --to-disk (a loop disk image)", () => campaign("install", (d) => {
    const tree = join(d, "..", "install-tree");
    if (!existsSync(tree)) makeTinyTree(tree);
    mkdirSync(join(d, "tmp"), { recursive: true });
    const w: World = { dir: d, sysroot: join(d, "installed") };
    const args = (x: World) => ["install", "--to-disk", join(x.dir, "disk.img"), "--source", `dir:${tree}`, "--size", "1300M", "--initramfs", initrd];
    return {
      template: w, command: args, next: args, always: ["install:partitioned#1", "install:root-mounted#1"],
      // The disk the next install wrote: its store verifies and its ESP boots the deployment.
      checkAfterNext: (x) => withRoot(join(x.dir, "disk.img"), (root) => {
        const esp = espImage.extract(join(x.dir, "disk.img"), join(x.dir, "esp-copy"));
        const p = checkInvariants({ dir: x.dir, sysroot: root, esp }, { previousDefault: "1", afterNext: false });
        rmSync(esp, { recursive: true, force: true });
        return p.map((m) => `installed disk: ${m}`);
      }),
    };
  }), T);
});

const tw = (d: string): World => ({ dir: d, sysroot: join(d, "sysroot"), esp: join(d, "esp") });
