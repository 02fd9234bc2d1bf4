// The health-check planner: which executables of the health.d directories run, in what order, and
// how the outcomes are summed up. Table-driven, on listings (the runner reads the directories).
import { describe, expect, it } from "vitest";
import { HEALTH_DIRS, ignoredName, planHealth, summarize, type HealthFile, type HealthListing } from "../../runtime/src/health/plan.ts";

const [VENDOR, ADMIN] = HEALTH_DIRS;
const exe = (name: string): HealthFile => ({ name, executable: true, masked: false, regular: true });
const plain = (name: string): HealthFile => ({ name, executable: false, masked: false, regular: true });
const masked = (name: string): HealthFile => ({ name, executable: false, masked: true, regular: false });
const dir = (name: string): HealthFile => ({ name, executable: true, masked: false, regular: false });
const listings = (vendor: HealthFile[], admin: HealthFile[]): HealthListing[] => [{ dir: VENDOR, files: vendor }, { dir: ADMIN, files: admin }];

describe("planHealth", () => {
  const cases: Array<{ what: string; vendor: HealthFile[]; admin: HealthFile[]; checks: string[]; skipped?: Array<[string, RegExp]> }> = [
    { what: "no checks anywhere", vendor: [], admin: [], checks: [] },
    { what: "vendor checks in name order", vendor: [exe("20-b"), exe("10-a")], admin: [], checks: [`${VENDOR}/10-a`, `${VENDOR}/20-b`] },
    { what: "both directories merged by name order", vendor: [exe("10-root"), exe("30-net")], admin: [exe("20-app")],
      checks: [`${VENDOR}/10-root`, `${ADMIN}/20-app`, `${VENDOR}/30-net`] },
    { what: "an /etc file replaces the vendor's of the same name", vendor: [exe("10-root")], admin: [exe("10-root")], checks: [`${ADMIN}/10-root`] },
    { what: "an empty file or /dev/null symlink in /etc masks the vendor's", vendor: [exe("10-root"), exe("20-x")], admin: [masked("10-root")],
      checks: [`${VENDOR}/20-x`], skipped: [["10-root", /masked/]] },
    { what: "a non-executable /etc file disables the name, and says so", vendor: [exe("10-root")], admin: [plain("10-root")],
      checks: [], skipped: [["10-root", /not executable/]] },
    { what: "directories are not checks", vendor: [dir("10-sub")], admin: [], checks: [], skipped: [["10-sub", /not a regular file/]] },
    { what: "hidden files, backups and package leftovers are ignored without a word",
      vendor: [exe(".10-hidden"), exe("10-root~"), exe("10-root.dpkg-old"), exe("10-root.rpmnew"), exe("10-root")], admin: [exe("10-root.dpkg-dist")],
      checks: [`${VENDOR}/10-root`] },
    { what: "byte order, not locale order", vendor: [exe("b"), exe("B"), exe("a"), exe("10")], admin: [], checks: ["10", "B", "a", "b"].map((n) => `${VENDOR}/${n}`) },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const plan = planHealth(listings(c.vendor, c.admin));
      expect(plan.checks.map((x) => x.path)).toEqual(c.checks);
      expect(plan.checks.every((x) => x.path.endsWith(`/${x.name}`))).toBe(true);
      expect(plan.skipped.map((s) => s.name)).toEqual((c.skipped ?? []).map(([n]) => n));
      for (const [i, [, reason]] of (c.skipped ?? []).entries()) expect(plan.skipped[i]!.reason).toMatch(reason);
    });
  }

  it("later listings win, whatever their number", () => {
    const plan = planHealth([{ dir: "/a", files: [exe("x")] }, { dir: "/b", files: [] }, { dir: "/c", files: [exe("x")] }]);
    expect(plan.checks).toEqual([{ name: "x", path: "/c/x" }]);
  });
});

describe("ignoredName", () => {
  it.each([[".x", true], ["x~", true], ["x.dpkg-new", true], ["x.ucf-dist", true], ["x.rpmsave", true], ["10-root", false], ["x.sh", false], ["dpkg-x", false]])(
    "%s → %s", (name, ignored) => expect(ignoredName(name)).toBe(ignored));
});

describe("summarize", () => {
  const o = (name: string, exitCode: number | null, error?: string) => ({ name, path: `/p/${name}`, exitCode, error, output: "" });
  it("all passed", () => {
    expect(summarize([o("a", 0), o("b", 0)])).toEqual({ ok: true, lines: ["check a: passed", "check b: passed"] });
  });
  it("no checks is healthy", () => expect(summarize([]).ok).toBe(true));
  it("names each failing check, its path and why", () => {
    const s = summarize([o("a", 0), o("b", 3), o("c", null, "timed out after 300 s")]);
    expect(s.ok).toBe(false);
    expect(s.lines).toEqual(["check a: passed", "check b (/p/b) FAILED: exit status 3", "check c (/p/c) FAILED: timed out after 300 s"]);
  });
});
