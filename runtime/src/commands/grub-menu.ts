// `particle grub-menu`: the menu particle keeps on a GRUB ESP. Without options it prints the menu
// generated from the ESP's entries. --write opts the ESP into GRUB mode (writes grub/particle.cfg
// and grub/particle.env; later stages, rollbacks and cleanups keep them current). --mkconfig is
// what /etc/grub.d/15_particle runs under grub-mkconfig: --write, then print the grub.cfg snippet
// that sources the menu from the ESP.
import { enableGrub, menuForEsp, readGrubEnv } from "../bootloader/grub.ts";
import { renderMkconfigSnippet } from "../bootloader/grub-menu.ts";
import { requireEsp, resolveWhere } from "../deployments/where.ts";

export default async function (_args: string[], opts: Record<string, any>): Promise<void> {
  const esp = requireEsp(resolveWhere(opts));
  if (opts.write || opts.mkconfig) enableGrub(esp);
  if (opts.mkconfig) process.stdout.write(renderMkconfigSnippet());
  else if (opts.env) process.stdout.write([...readGrubEnv(esp)].map(([k, v]) => `${k}=${v}\n`).join(""));
  else if (!opts.write) process.stdout.write(menuForEsp(esp));
}
