// The format choice applied to a real tree: read its kernel's facts, choose, say why.
import type { RootFormat } from "../manifest.ts";
import { chooseFormat, type FormatRequest } from "./format-choice.ts";
import { kernelFactsFromTree } from "./probe.ts";
import type { TreeView } from "./tree-view.ts";

/** The format for the tree's own kernel `kver` (or the request as is when it has none); throws when it cannot boot. */
export function resolveFormat(request: FormatRequest, tree: TreeView, kver: string | undefined, allowed: readonly RootFormat[], log: (m: string) => void): RootFormat {
  const choice = chooseFormat(request, kver === undefined ? undefined : kernelFactsFromTree(tree, kver), allowed);
  if (!choice.ok) throw new Error(choice.message);
  log(`format: ${choice.why}`);
  return choice.format;
}
