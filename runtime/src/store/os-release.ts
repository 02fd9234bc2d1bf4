/** VERSION_ID (or VERSION) from the tree's os-release, for titles and status. */
export function parseOsRelease(text: string): string | undefined {
  const vars: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!.replace(/^["']|["']$/g, "");
  }
  return vars.VERSION_ID ?? vars.VERSION ?? vars.BUILD_ID;
}
