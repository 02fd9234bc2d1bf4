// The kernel's build configuration as distributions ship it (/boot/config-<kver>, or
// /usr/lib/modules/<kver>/config on Fedora-style trees): `CONFIG_X=y|m|value` lines and
// `# CONFIG_X is not set` comments. Only the value matters here; unset options are simply absent.

export type KernelConfig = Record<string, string>;

export function parseKernelConfig(text: string): KernelConfig {
  const out: KernelConfig = {};
  for (const line of text.split("\n")) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
  }
  return out;
}

/** Built in (y) or as a module (m). */
export function enabled(config: KernelConfig, option: string): boolean {
  return config[option] === "y" || config[option] === "m";
}
