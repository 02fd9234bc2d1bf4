// particle/tmp/: in-flight work of the command holding the store lock. Whatever a killed command
// left there (files, and the mounts of a deployment it was reading) is garbage for the next one.
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { unmountTree } from "../mounts/index.ts";
import type { StoreLayout } from "./layout.ts";

/** Removes what a crashed command left in tmp/. Only called with the store lock held. */
export function cleanTmp(l: StoreLayout): void {
  if (!existsSync(l.tmp)) return;
  // A killed command leaves its mounts (a deployment, the chroot's /proc and /dev) under tmp/:
  // detach them first, never remove through them.
  unmountTree(l.tmp, { lazy: true });
  for (const name of readdirSync(l.tmp)) rmSync(join(l.tmp, name), { recursive: true, force: true });
}
