// A local apt repository of one tiny package, built with dpkg-deb (part of dpkg, always there) and
// an index written here: `particle layer` runs real apt and dpkg against it, with no network and
// in a second instead of minutes.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deterministicBytes } from "../../host/lib/fixture.ts";

export const PROBE = "particle-crash-probe";

/** Writes repo/<name>_<version>_all.deb and repo/Packages; returns the repository directory. */
export function makeRepo(repo: string, work: string, files = 40): string {
  const pkg = join(work, "pkg");
  mkdirSync(join(pkg, "DEBIAN"), { recursive: true });
  writeFileSync(join(pkg, "DEBIAN/control"), [
    `Package: ${PROBE}`, "Version: 1.0", "Architecture: all", "Maintainer: Particle-OS tests <tests@particle-os.invalid>",
    "Description: files for the crash campaign of particle layer", "",
  ].join("\n"));
  for (let i = 0; i < files; i++) {
    const d = join(pkg, "usr/share", PROBE);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `data-${i}`), deterministicBytes(2000 + i * 97, 500 + i));
  }
  mkdirSync(join(pkg, "usr/bin"), { recursive: true });
  writeFileSync(join(pkg, "usr/share", PROBE, "probe"), "#!/bin/sh\necho probe\n");
  chmodSync(join(pkg, "usr/share", PROBE, "probe"), 0o755);
  mkdirSync(repo, { recursive: true });
  const deb = `${PROBE}_1.0_all.deb`;
  execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", pkg, join(repo, deb)], { stdio: "pipe" });
  rmSync(pkg, { recursive: true, force: true });
  const bytes = readFileSync(join(repo, deb));
  const control = execFileSync("dpkg-deb", ["--field", join(repo, deb)], { encoding: "utf8" }).trimEnd();
  writeFileSync(join(repo, "Packages"), `${control}\nFilename: ./${deb}\nSize: ${statSync(join(repo, deb)).size}\nSHA256: ${createHash("sha256").update(bytes).digest("hex")}\n\n`);
  return repo;
}
