// The entry for one deployment: what it boots and how it is named. Pure: takes the manifest and the
// ESP paths, returns the entry text and file name.
import type { Manifest } from "../manifest.ts";
import { newEntry, renderEntry } from "./entry.ts";
import { DEFAULT_TRIES, entryFileName } from "./filename.ts";
import { joinCmdline } from "./kargs.ts";
import { SORT_KEY } from "./order.ts";

export const OS_NAME = "Particle-OS";

export interface EntryInput {
  manifest: Pick<Manifest, "id" | "imageDigest" | "version" | "created" | "kernel">;
  /** UUID of the root filesystem (ext4) holding particle/. */
  rootUuid: string;
  /** ESP-absolute paths, e.g. /particle/<digest>/vmlinuz. */
  linux: string;
  initrd: string;
  generation: number;
  /** Extra kernel arguments (console=, quiet …), after the ones particle needs. */
  extraArgs?: readonly string[];
  tries?: number;
}

/** The arguments that make the initramfs boot this deployment (see boot/ for their reader). */
export function deploymentArgs(rootUuid: string, m: Pick<Manifest, "id" | "imageDigest">): string[] {
  return [`root=UUID=${rootUuid}`, "rw", `particle.deploy=${m.id}`, `particle.image=${m.imageDigest}`];
}

export function entryTitle(m: EntryInput["manifest"]): string {
  const when = m.created.slice(0, 16).replace("T", " ");
  return `${OS_NAME} ${m.version ?? when} (deployment ${m.id}${m.kernel ? `, ${m.kernel}` : ""})`;
}

export function renderDeploymentEntry(input: EntryInput): { file: string; text: string } {
  const m = input.manifest;
  const entry = newEntry({
    comments: [
      `${OS_NAME} deployment ${m.id}, written by particle. "version" is a boot-order generation:`,
      "the highest boots first (particle rollback rewrites it); the +N in the file name counts tries.",
    ],
    title: entryTitle(m),
    version: String(input.generation),
    sortKey: SORT_KEY,
    linux: input.linux,
    initrd: [input.initrd],
    options: joinCmdline([...deploymentArgs(input.rootUuid, m), ...(input.extraArgs ?? [])]),
  });
  return { file: entryFileName(m.version, m.id, input.tries ?? DEFAULT_TRIES), text: renderEntry(entry) };
}
