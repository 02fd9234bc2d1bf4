// Paths inside overlayfs mount options. The legacy mount(2) option string is split at ',' and
// lowerdir at ':'; '\' escapes both, '=' is harmless after the key. Rather than depend on each
// kernel version's escaping rules, paths with those characters are refused with a message that
// names the path: Particle-OS chooses its own paths, so this only trips on odd --sysroot values.
const SPECIAL = /[,:\\\n]/;

export function overlayPath(path: string, what: string): string {
  if (!path.startsWith("/")) throw new Error(`${what}: overlay layer path must be absolute: ${path}`);
  if (SPECIAL.test(path)) throw new Error(`${what}: overlay layer path contains ',', ':', '\\' or a newline, which overlayfs options cannot carry: ${path}`);
  return path;
}
