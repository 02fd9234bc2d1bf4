// `particle health` as it ships (dist/particle) on real directories and real executables, and the
// shipped check health/health.d/10-particle-root with its inputs pointed at files (PARTICLE_HEALTH_*).
// The QEMU tier runs both on booted guests (test/qemu/cycle.test.ts, grub.test.ts).
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { particle } from "./lib/particle.ts";

const work = mkdtempSync(join(tmpdir(), "particle-health-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

function root(files: Record<string, string | { link: string } | { mode: number; text: string }>): string {
  const r = join(work, `root-${n++}`);
  for (const [path, f] of Object.entries(files)) {
    const p = join(r, path);
    mkdirSync(join(p, ".."), { recursive: true });
    if (typeof f === "string") { writeFileSync(p, f); chmodSync(p, 0o755); }
    else if ("link" in f) symlinkSync(f.link, p);
    else { writeFileSync(p, f.text); chmodSync(p, f.mode); }
  }
  return r;
}
const VENDOR = "usr/lib/particle/health.d";
const ADMIN = "etc/particle/health.d";

describe("particle health", () => {
  it("runs the checks of both directories in name order, the /etc one winning by name", () => {
    const order = join(work, "order");
    const r = root({
      [`${VENDOR}/10-a`]: `#!/bin/sh\necho 10-vendor >>${order}\n`,
      [`${VENDOR}/20-b`]: `#!/bin/sh\necho 20-vendor-should-not-run >>${order}\n`,
      [`${ADMIN}/20-b`]: `#!/bin/sh\necho 20-admin >>${order}\n`,
      [`${ADMIN}/15-c`]: `#!/bin/sh\necho 15-admin >>${order}\necho all good\n`,
    });
    const out = particle(["health", "--root", r, "--json"]);
    expect(out.code, out.stderr).toBe(0);
    expect(spawnSync("cat", [order], { encoding: "utf8" }).stdout).toBe("10-vendor\n15-admin\n20-admin\n");
    const j = JSON.parse(out.stdout);
    expect(j.ok).toBe(true);
    expect(j.checks.map((c: any) => c.path)).toEqual([join(r, VENDOR, "10-a"), join(r, ADMIN, "15-c"), join(r, ADMIN, "20-b")]);
    expect(out.stderr).toContain("particle health: 15-c: all good");
  });

  it("fails naming every failing check and its output; runs the rest; masked and non-executable files do not run", () => {
    const r = root({
      [`${VENDOR}/10-fails`]: "#!/bin/sh\necho the root is not what it should be\nexit 3\n",
      [`${VENDOR}/20-masked`]: "#!/bin/sh\nexit 1\n",
      [`${ADMIN}/20-masked`]: { link: "/dev/null" },
      [`${VENDOR}/30-no-x`]: { mode: 0o644, text: "#!/bin/sh\nexit 1\n" },
      [`${VENDOR}/40-passes`]: "#!/bin/sh\necho fine\n",
      [`${VENDOR}/50-killed`]: "#!/bin/sh\nkill -9 $$\n",
    });
    const out = particle(["health", "--root", r]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("particle health: 10-fails: the root is not what it should be");
    expect(out.stderr).toContain(`check 10-fails (${join(r, VENDOR, "10-fails")}) FAILED: exit status 3`);
    expect(out.stderr).toContain(`check 50-killed (${join(r, VENDOR, "50-killed")}) FAILED: killed by SIGKILL`);
    expect(out.stderr).toContain("check 40-passes: passed");
    expect(out.stderr).toMatch(/skipping .*20-masked: masked/);
    expect(out.stderr).toMatch(/skipping .*30-no-x: not executable/);
    expect(out.stderr).toMatch(/particle: error: health checks failed: 10-fails, 50-killed/);
  });

  it("no directories, no checks: healthy", () => {
    const out = particle(["health", "--root", join(work, "empty-root")]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toMatch(/no checks in/);
  });
});

describe("the shipped check 10-particle-root", () => {
  const CHECK = resolve(__dirname, "../../health/health.d/10-particle-root");
  const digest = "ab".repeat(32);
  const marker = (id: string, image: string) => JSON.stringify({ schema: 1, id, imageDigest: image, format: "composefs" }, null, 2);
  function check(o: { cmdline: string; marker?: string; units?: string }) {
    const d = mkdtempSync(join(work, "check-"));
    writeFileSync(join(d, "cmdline"), `${o.cmdline}\n`);
    if (o.marker !== undefined) writeFileSync(join(d, "booted"), o.marker);
    writeFileSync(join(d, "units"), o.units ?? "# none\n");
    mkdirSync(join(d, "images"));
    const r = spawnSync(CHECK, [], {
      encoding: "utf8",
      env: { ...process.env, PARTICLE_HEALTH_CMDLINE: join(d, "cmdline"), PARTICLE_HEALTH_MARKER: join(d, "booted"), PARTICLE_HEALTH_IMAGES: join(d, "images"), PARTICLE_HEALTH_UNITS: join(d, "units") },
    });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  }

  it("passes when the booted root is the pinned image and deployment", () => {
    const r = check({ cmdline: `root=UUID=x particle.deploy=3 particle.image=${digest} ro`, marker: marker("3", digest) });
    expect(r.out).toContain(`root is the pinned image ${digest} (deployment 3)`);
    expect(r.code).toBe(0);
  });

  it.each([
    ["no particle.image=", "root=UUID=x particle.deploy=3", marker("3", digest), /no particle\.image=/],
    ["no marker (particle-boot did not mount the root)", `particle.deploy=3 particle.image=${digest}`, undefined, /particle-boot did not mount this root/],
    ["another image mounted", `particle.deploy=3 particle.image=${digest}`, marker("3", "cd".repeat(32)), /root image (cd)+ is not the pinned particle\.image=(ab)+$/m],
    ["another deployment booted", `particle.deploy=4 particle.image=${digest}`, marker("3", digest), /booted deployment 3 is not particle\.deploy=4/],
  ])("fails: %s", (_what, cmdline, m, says) => {
    const r = check({ cmdline, marker: m });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(says);
  });

  it("fails naming a required unit that is not active", () => {
    const r = check({ cmdline: `particle.deploy=3 particle.image=${digest}`, marker: marker("3", digest), units: "# comment\n\nparticle-test-no-such.service\n" });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/required unit particle-test-no-such\.service is \S+, not active/);
  });
});

describe("the units `make install` ships", () => {
  const REPO = resolve(__dirname, "../..");
  const dest = join(work, "installed");
  const units = join(dest, "usr/lib/systemd/system");
  /** systemd's own verdict on the boot transaction, with the shipped units over the host's stock ones. */
  const verify = () => spawnSync("systemd-analyze", ["verify", "--man=no", "multi-user.target"], {
    encoding: "utf8", env: { ...process.env, SYSTEMD_UNIT_PATH: `${units}:/usr/lib/systemd/system` },
  });

  it("put particle-health into boot-complete.target and particle-bless into multi-user.target", () => {
    const r = spawnSync("make", ["-C", REPO, "-s", "--no-print-directory", "install", `DESTDIR=${dest}`], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(readlinkSync(join(units, "boot-complete.target.requires/particle-health.service"))).toBe("../particle-health.service");
    expect(readlinkSync(join(units, "multi-user.target.wants/particle-bless.service"))).toBe("../particle-bless.service");
    // Wanted by multi-user.target, it would be ordered both before and after it.
    expect(existsSync(join(units, "multi-user.target.wants/particle-health.service"))).toBe(false);
    expect(existsSync(join(dest, "usr/lib/particle/health.d/10-particle-root"))).toBe(true);
    expect(existsSync(join(dest, "usr/lib/particle/required-units"))).toBe(true);
  });

  it("form no ordering cycle (one would make systemd drop particle-bless's job: GRUB never blessed)", () => {
    const r = verify();
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/ordering cycle/i);
    // The check sees the cycle when it is there: particle-bless with default dependencies (as it
    // once had) is ordered before multi-user.target, which particle-health comes after.
    const bless = join(units, "particle-bless.service");
    const shipped = readFileSync(bless, "utf8");
    writeFileSync(bless, shipped.replace(/^DefaultDependencies=no\n/m, ""));
    try {
      // systemd may enter the cycle at any of its units; what matters is that it is found and
      // which job it drops.
      const err = `${verify().stderr}`;
      expect(err).toMatch(/Found ordering cycle on \S+/);
      expect(err).toMatch(/particle-bless\.service/);
    } finally {
      writeFileSync(bless, shipped);
    }
  });
});
