// What `particle --version` says about this build. The commit and the build time are injected by
// `bun build --define` (Makefile); the time is the commit's (or SOURCE_DATE_EPOCH), never the clock,
// so two builds of one commit are the same bytes. Run from source (vitest on Node) they are unknown.
import { RootFormat } from "./manifest.ts";

declare const PARTICLE_COMMIT: string | undefined;
declare const PARTICLE_BUILD_TIME: string | undefined;

export const VERSION = "0.1.0";
/** The bootloaders `particle install` sets up and whose entries particle writes. */
export const BOOTLOADERS = ["systemd-boot", "grub"] as const;

export interface BuildInfo {
  version: string;
  commit: string;
  buildTime: string;
  formats: readonly string[];
  bootloaders: readonly string[];
}

export function buildInfo(): BuildInfo {
  return {
    version: VERSION,
    commit: typeof PARTICLE_COMMIT === "string" ? PARTICLE_COMMIT : "unknown",
    buildTime: typeof PARTICLE_BUILD_TIME === "string" ? PARTICLE_BUILD_TIME : "unknown",
    formats: RootFormat.options,
    bootloaders: BOOTLOADERS,
  };
}

export function renderVersion(b: BuildInfo): string {
  return [
    `particle ${b.version}`,
    `commit: ${b.commit}`,
    `built: ${b.buildTime}`,
    `formats: ${b.formats.join(", ")} (auto picks per kernel)`,
    `bootloaders: ${b.bootloaders.join(", ")}`,
  ].join("\n") + "\n";
}
