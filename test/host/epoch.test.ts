// Files dated around the epoch, before and after it (issue 12), staged from a directory, a
// tarball and an OCI layer into both EROFS formats and mounted with the real kernel: every mtime
// must come back to the nanosecond (EROFS keeps 64-bit signed seconds). squashfs cannot store
// times before 1970 and is refused. Needs root.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compareTrees } from "./lib/treecmp.ts";
import { Mounts, particle, stageJson } from "./lib/particle.ts";
import { tarDir, writeImage } from "./lib/oci-layout.ts";
import { tarBytes } from "./lib/oci-tar.ts";

const base = mkdtempSync("/var/tmp/particle-epoch-");
const src = join(base, "src");
const sysroot = join(base, "sysroot");
const mnt = join(base, "mnt");
const layout = join(base, "layout");
const mounts = new Mounts(sysroot);

// [name, date as touch -d takes it]. Several files share the half-second before the epoch, so it
// becomes the image's build time and compact inodes carry a negative time too.
const TIMES: [string, string][] = [
  ["before-by-1s-plus-123ns", "1969-12-31 23:59:59.000000123"],
  ["last-ns-before", "1969-12-31 23:59:59.999999999"],
  ["half-before-1", "1969-12-31 23:59:59.5"],
  ["half-before-2", "1969-12-31 23:59:59.5"],
  ["half-before-3", "1969-12-31 23:59:59.5"],
  ["epoch", "1970-01-01 00:00:00"],
  ["first-ns-after", "1970-01-01 00:00:00.000000001"],
  ["half-after", "1970-01-01 00:00:00.5"],
  ["in-1960", "1960-06-15 12:00:00.25"],
  // The host's ext4 stops at -2^31 s; the crafted layer below goes further back.
  ["oldest-ext4", "1901-12-13 20:45:52"],
  ["after-2038", "2040-02-29 12:00:00.75"],
];

const touch = (p: string, when: string) => execFileSync("touch", ["-h", "-d", `${when} UTC`, p]);

beforeAll(() => {
  mkdirSync(join(src, "old-dir"), { recursive: true });
  for (const d of ["etc", "var", "sysroot"]) mkdirSync(join(src, d));
  for (const [name] of TIMES) writeFileSync(join(src, name), `${name}\n`);
  writeFileSync(join(src, "old-dir", "inside"), "inside\n");
  symlinkSync("epoch", join(src, "old-link"));
  // Directories last: adding entries moves their mtime.
  for (const [name, when] of TIMES) touch(join(src, name), when);
  touch(join(src, "old-dir", "inside"), "1969-07-20 20:17:40.123456789");
  touch(join(src, "old-link"), "1969-12-31 23:59:59.000000001");
  touch(join(src, "old-dir"), "1969-12-31 23:59:58.999999999");
  for (const d of ["etc", "var", "sysroot"]) touch(join(src, d), "1969-12-31 23:59:59.5");
  writeImage(layout, { tag: "epoch", layers: [{ tar: tarDir(src), compression: "gzip" }] });
});

afterAll(() => {
  for (const m of mounts.live.reverse()) particle(["unmount", m]);
  execFileSync("sh", ["-c", `grep -o ' ${base}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null; true`]);
  rmSync(base, { recursive: true, force: true });
});

/** Stages, mounts, and returns the differences between the source tree and the mount. */
function stageAndCompare(source: string, format: string): string[] {
  const r = stageJson(source, sysroot, ["--format", format]);
  const m = join(mnt, `${r.id}`);
  mounts.mount(r.id, m);
  try {
    // The mount shows the original times, not a wrapped or clamped one.
    const st = lstatSync(join(m, "before-by-1s-plus-123ns"), { bigint: true });
    expect(st.mtimeNs).toBe(-999_999_877n);
    expect(execFileSync("stat", ["-c", "%y", join(m, "before-by-1s-plus-123ns")], { env: { TZ: "UTC" } }).toString().trim()).toBe("1969-12-31 23:59:59.000000123 +0000");
    return compareTrees(src, m);
  } finally {
    mounts.unmount(m);
  }
}

describe("times around the epoch survive staging", () => {
  it("the source tree really holds them (the host filesystem stores them)", () => {
    expect(lstatSync(join(src, "half-before-1"), { bigint: true }).mtimeNs).toBe(-500_000_000n);
    expect(lstatSync(join(src, "oldest-ext4"), { bigint: true }).mtimeNs).toBe(-(2n ** 31n) * 1_000_000_000n);
  });

  it.each([
    ["dir", "composefs"], ["dir", "erofs"],
    ["tar", "composefs"], ["tar", "erofs"],
    ["oci", "composefs"], ["oci", "erofs"],
  ])("%s source, %s format: the mount equals the source, mtimes to the nanosecond", (kind, format) => {
    const tarball = join(base, "src.tar");
    if (kind === "tar" && !existsSync(tarball)) execFileSync("tar", ["--create", "--format=pax", "--file", tarball, "-C", src, "."]);
    const source = kind === "dir" ? `dir:${src}` : kind === "tar" ? `tar:${tarball}` : `oci:${layout}:epoch`;
    expect(stageAndCompare(source, format)).toEqual([]);
  });

  it("a layer with GNU base-256 header times and PAX fractions beyond what ext4 holds", () => {
    const items = [
      { path: "etc/", type: "dir" as const, mtime: 0 },
      { path: "var/", type: "dir" as const, mtime: 0 },
      { path: "sysroot/", type: "dir" as const, mtime: 0 },
      { path: "header-only", data: "h\n", mtime: -3_000_000_000 },
      { path: "pax-far", data: "p\n", mtime: -3_000_000_001, paxMtime: "-3000000000.25" },
      { path: "pax-half", data: "q\n", mtime: -2, paxMtime: "-1.5" },
      { path: "pax-1ns-before", data: "r\n", mtime: -1, paxMtime: "-0.000000001" },
      { path: "year-3000", data: "s\n", mtime: 32_503_680_000, paxMtime: "32503680000.999999999" },
    ];
    writeImage(layout, { tag: "crafted", layers: [{ tar: tarBytes(items), compression: "none" }] });
    const want: Record<string, bigint> = {
      "header-only": -3_000_000_000_000_000_000n,
      "pax-far": -3_000_000_000_250_000_000n,
      "pax-half": -1_500_000_000n,
      "pax-1ns-before": -1n,
      "year-3000": 32_503_680_000_999_999_999n,
    };
    for (const format of ["composefs", "erofs"]) {
      const r = stageJson(`oci:${layout}:crafted`, sysroot, ["--format", format]);
      const m = join(mnt, `crafted-${format}`);
      mounts.mount(r.id, m);
      try {
        for (const [name, ns] of Object.entries(want)) expect([name, lstatSync(join(m, name), { bigint: true }).mtimeNs]).toEqual([name, ns]);
      } finally {
        mounts.unmount(m);
      }
    }
  });

  it("squashfs cannot store them: refused by name, no deployment", () => {
    const before = readdirSync(join(sysroot, "particle/deploy")).sort();
    const res = particle(["stage", `dir:${src}`, "--sysroot", sysroot, "--format", "squashfs"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`particle: error: source dir:${src}: /\\S+ has mtime -\\d+ \\(seconds since 1970\\), which squashfs cannot store`));
    expect(readdirSync(join(sysroot, "particle/deploy")).sort()).toEqual(before);
    expect(readdirSync(join(sysroot, "particle/tmp"))).toEqual([]);
  });
});
