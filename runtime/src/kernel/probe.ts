// Facts about a kernel, read from a tree (the deployment's own kernel at stage time) or from the
// running system (`particle doctor`). The judgement is capabilities.ts's; this only reads files.
import { readdirSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { parseKernelConfig } from "./config.ts";
import type { KernelFacts } from "./capabilities.ts";
import { dirView, type TreeView } from "./tree-view.ts";

const MODULE_DIRS = ["usr/lib/modules", "lib/modules"];

/** The kernel versions a tree ships: directories under /usr/lib/modules (or /lib/modules). */
export function treeKernels(t: TreeView): string[] {
  for (const d of MODULE_DIRS) {
    const l = t.list(d);
    if (l?.length) return l.filter((k) => t.list(`${d}/${k}`) !== undefined).sort();
  }
  return [];
}

/** A module path in modules.dep/modules.builtin ("kernel/fs/erofs/erofs.ko.xz:") → its name ("erofs"). */
export function moduleNames(listing: string): string[] {
  const names = new Set<string>();
  for (const line of listing.split("\n")) {
    const path = line.split(":")[0]!.trim();
    const m = /([^/]+)\.ko(?:\.[a-z0-9]+)?$/.exec(path);
    if (m) names.add(m[1]!.replace(/-/g, "_"));
  }
  return [...names].sort();
}

/** Facts about kernel `kver` as shipped in tree `t`. */
export function kernelFactsFromTree(t: TreeView, kver: string): KernelFacts {
  const configText = t.read(`boot/config-${kver}`) ?? MODULE_DIRS.map((d) => t.read(`${d}/${kver}/config`)).find((b) => b !== undefined);
  let modules: string[] | null = null;
  for (const d of MODULE_DIRS) {
    const dep = t.read(`${d}/${kver}/modules.dep`);
    const builtin = t.read(`${d}/${kver}/modules.builtin`);
    if (dep === undefined && builtin === undefined) continue;
    modules = [...new Set([...moduleNames(dep?.toString() ?? ""), ...moduleNames(builtin?.toString() ?? "")])].sort();
    break;
  }
  return { release: kver, config: configText ? parseKernelConfig(configText.toString()) : null, modules, filesystems: null, loaded: null };
}

/** Facts about the running kernel: its modules and config as installed in `/`, and what it has registered. */
export function runningKernelFacts(root = "/"): KernelFacts {
  const facts = kernelFactsFromTree(dirView(root), release());
  let filesystems: string[] | null = null;
  try {
    filesystems = readFileSync("/proc/filesystems", "utf8").split("\n").map((l) => l.split("\t").at(-1)!.trim()).filter(Boolean);
  } catch { /* not Linux, or no /proc */ }
  let loaded: string[] | null = null;
  try {
    loaded = readdirSync("/sys/module");
  } catch { /* no sysfs */ }
  return { ...facts, filesystems, loaded };
}

/**
 * The kernel a tree boots: /usr/lib/modules/<kver> with its image beside the modules (Fedora, bootc
 * style) or as /boot/vmlinuz-<kver> (Debian, Ubuntu). The newest wins.
 */
export function bootKernel(t: TreeView): string | undefined {
  const modules = t.list("usr/lib/modules") ?? [];
  const boot = new Set(t.list("boot") ?? []);
  const kvers = modules.filter((k) => (t.list(`usr/lib/modules/${k}`) ?? []).includes("vmlinuz") || boot.has(`vmlinuz-${k}`));
  return kvers.sort().at(-1);
}
