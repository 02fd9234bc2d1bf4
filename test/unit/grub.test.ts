// The GRUB menu generator and the grubenv encoder: table-driven, and every generated menu is run
// through the real grub-script-check; every encoded grubenv is read back by the real grub-editenv.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { grubQuote, menuEntryId, renderGrubMenu, renderLoaderCfg, renderMkconfigSnippet, splitKernelArgs, type MenuEntry } from "../../runtime/src/bootloader/grub-menu.ts";
import { encodeGrubEnv, ENV_SIZE, parseGrubEnv, planBless, setNextEntry, startCounting, stopCounting } from "../../runtime/src/bootloader/grub-env.ts";
import { menuEntryOf } from "../../runtime/src/bootloader/grub.ts";
import { loadEntry } from "../../runtime/src/bootloader/entries.ts";
import { renderDeploymentEntry } from "../../runtime/src/bls/particle-entry.ts";

const work = mkdtempSync(join(tmpdir(), "particle-grub-unit-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

/** grub-script-check's verdict on `text`: exit status and what it said. */
function scriptCheck(text: string): { status: number | null; out: string } {
  const f = join(work, `menu-${n++}.cfg`);
  writeFileSync(f, text);
  const r = spawnSync("grub-script-check", [f], { encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function editenv(file: string, ...args: string[]): string {
  const r = spawnSync("grub-editenv", [file, ...args], { encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`grub-editenv ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const entry = (deployId: string, over: Partial<MenuEntry> = {}): MenuEntry => ({
  deployId,
  title: `Particle-OS 13 (deployment ${deployId}, 6.12.0-1-amd64)`,
  linux: `/particle/${"a".repeat(64)}/vmlinuz`,
  initrd: [`/particle/${"b".repeat(64)}/initrd.img`],
  options: `root=UUID=0c4e2a5c-1111-2222-3333-444455556666 rw particle.deploy=${deployId} particle.image=${"c".repeat(64)} console=ttyS0`,
  ...over,
});

describe("grubQuote", () => {
  it.each([
    ["plain", "root=UUID=abc-1", "root=UUID=abc-1"],
    ["path", "/particle/ab/vmlinuz", "/particle/ab/vmlinuz"],
    ["spaces", "Particle-OS 13 (deployment 2)", "'Particle-OS 13 (deployment 2)'"],
    ["single quote", "Bob's OS", `'Bob'\\''s OS'`],
    ["dollar", "a$b", "'a$b'"],
    ["semicolon and braces", "x;{y}", "'x;{y}'"],
    ["hash", "#comment", "'#comment'"],
    ["kernel double quotes", 'foo="a b"', `'foo="a b"'`],
    ["empty", "", "''"],
  ])("%s", (_what, input, want) => {
    expect(grubQuote(input)).toBe(want);
  });
});

describe("splitKernelArgs", () => {
  it.each([
    ["a b  c", ["a", "b", "c"]],
    ['foo="a b" c', ['foo="a b"', "c"]],
    ["  ", []],
    ['"x y"', ['"x y"']],
  ])("%j", (input, want) => {
    expect(splitKernelArgs(input)).toEqual(want);
  });
});

describe("renderGrubMenu", () => {
  const cases: Array<[string, MenuEntry[], number | undefined]> = [
    ["no entries", [], 3],
    ["one entry (install)", [entry("1")], 3],
    ["two entries (staged update)", [entry("2"), entry("1")], 3],
    ["three entries, no timeout (grub-mkconfig)", [entry("3"), entry("2"), entry("1")], undefined],
    ["hostile title and options", [entry("2-ab", { title: "It's $HOME; {x} \"q\" # not a comment", options: 'root=UUID=x rw quoted="a b" dollar=$x semi=;' }), entry("1")], 0],
  ];

  it.each(cases)("%s: passes grub-script-check", (_what, entries, timeout) => {
    const r = scriptCheck(renderGrubMenu({ entries, timeout }));
    expect(r.out).toBe("");
    expect(r.status).toBe(0);
  });

  it("grub-script-check does reject a broken script (the check above is not vacuous)", () => {
    const broken = renderGrubMenu({ entries: [entry("2"), entry("1")] }).replace(/\nfi\n/, "\n");
    expect(scriptCheck(broken).status).not.toBe(0);
    expect(scriptCheck("menuentry 'x' {\n  linux /vmlinuz\n").status).not.toBe(0);
  });

  it("has one menuentry per deployment, in the given order, with kernel, initrd and options", () => {
    const text = renderGrubMenu({ entries: [entry("2"), entry("1")], timeout: 3 });
    const ids = [...text.matchAll(/^menuentry .* --id (\S+) \{$/gm)].map((m) => m[1]);
    expect(ids).toEqual(["particle-2", "particle-1"]);
    const e = entry("2");
    expect(text).toContain(`menuentry 'Particle-OS 13 (deployment 2, 6.12.0-1-amd64)' --id particle-2 {`);
    expect(text).toContain(`  linux ${e.linux} ${e.options}\n  initrd ${e.initrd[0]}\n}`);
    expect(text).toContain("set timeout=3\n");
  });

  it("defaults to the first entry and falls back to the second when boot_counter reaches 0", () => {
    const text = renderGrubMenu({ entries: [entry("5"), entry("4"), entry("1")] });
    expect(text).toMatch(/^set default=particle-5$/m);
    expect(text).toMatch(/^set fallback=particle-4$/m);
    expect(text).toContain(`elif [ "\${particle_counted}" = 5 -a -n "\${boot_counter}" -a "\${boot_success}" != 1 ]; then`);
    expect(text).toMatch(/if \[ "\$\{boot_counter\}" = 0 \]; then\n.*\n {4}set default=particle-4\n/);
    // 3 → 2 → 1 → 0, each saved before the boot.
    for (const k of [3, 2, 1]) expect(text).toContain(`[ "\${boot_counter}" = ${k} ]; then\n      set boot_counter=${k - 1}\n      save_env -f /grub/particle.env boot_counter\n`);
    expect(text).not.toContain("set timeout");
  });

  it("without a second entry there is nothing to fall back to: no counting, no fallback", () => {
    const text = renderGrubMenu({ entries: [entry("1")] });
    expect(text).not.toContain("boot_counter=");
    expect(text).not.toContain("set fallback");
    expect(text).toContain('if [ -n "${next_entry}" ]; then');
  });

  it("a one-shot next_entry wins over the default and is cleared in grubenv", () => {
    const text = renderGrubMenu({ entries: [entry("2"), entry("1")] });
    expect(text).toContain('  set default="${next_entry}"\n  set next_entry=\n  save_env -f /grub/particle.env next_entry\n');
    expect(text.indexOf("next_entry}\" ]")).toBeLessThan(text.indexOf("particle_counted}\" ="));
  });

  it("quotes what GRUB would otherwise expand", () => {
    const text = renderGrubMenu({ entries: [entry("2", { title: "a $b", options: "x=$y 'q'" })] });
    expect(text).toContain("menuentry 'a $b' --id particle-2 {");
    expect(text).toContain(`'x=$y' ''\\''q'\\'''`);
  });

  it("loader grub.cfg and the grub-mkconfig snippet pass grub-script-check", () => {
    for (const t of [renderLoaderCfg(), renderMkconfigSnippet()]) {
      const r = scriptCheck(t);
      expect(r.out).toBe("");
      expect(r.status).toBe(0);
    }
    expect(renderMkconfigSnippet()).toContain("search --no-floppy --file --set=particle_esp /grub/particle.cfg");
  });

  it("takes title, kernel, initrd and options from the deployment's BLS entry", () => {
    const { file, text } = renderDeploymentEntry({
      manifest: { id: "7", imageDigest: "d".repeat(64), version: "13.2", created: "2026-01-02T03:04:05Z", kernel: "6.12.0-1-amd64" },
      rootUuid: "u-1", linux: "/particle/k/vmlinuz", initrd: "/particle/i/initrd.img", generation: 4, tries: 0,
    });
    expect(file).toBe("particle-13.2-7.conf");
    const m = menuEntryOf(loadEntry(file, text)!);
    expect(m).toEqual({
      deployId: "7", title: "Particle-OS 13.2 (deployment 7, 6.12.0-1-amd64)", linux: "/particle/k/vmlinuz", initrd: ["/particle/i/initrd.img"],
      options: `root=UUID=u-1 rw particle.deploy=7 particle.image=${"d".repeat(64)}`,
    });
  });
});

describe("grubenv", () => {
  it("is exactly 1024 bytes, padded with '#', and grub-editenv reads it", () => {
    const env = new Map([["boot_counter", "3"], ["boot_success", "0"], ["particle_counted", "2-ab"], ["next_entry", "particle-1"]]);
    const buf = encodeGrubEnv(env);
    expect(buf.length).toBe(ENV_SIZE);
    expect(buf.toString("latin1")).toMatch(/^# GRUB Environment Block\nboot_counter=3\nboot_success=0\nparticle_counted=2-ab\nnext_entry=particle-1\n#+$/);
    const f = join(work, "grubenv-1");
    writeFileSync(f, buf);
    expect(editenv(f, "list")).toBe("boot_counter=3\nboot_success=0\nparticle_counted=2-ab\nnext_entry=particle-1\n");
  });

  it("reads what grub-editenv writes, escapes included", () => {
    const f = join(work, "grubenv-2");
    editenv(f, "create");
    editenv(f, "set", "boot_counter=2", "weird=a\\b", "multi=x\ny");
    const data = readFileSync(f);
    expect(data.length).toBe(ENV_SIZE);
    const env = parseGrubEnv(data);
    expect(Object.fromEntries(env)).toEqual({ boot_counter: "2", weird: "a\\b", multi: "x\ny" });
    // And our encoding of those values has grub-editenv's bytes (Debian's adds a warning comment
    // line after the signature, which GRUB skips like the padding).
    const vars = "boot_counter=2\nweird=a\\\\b\nmulti=x\\\ny\n";
    expect(data.toString("latin1")).toContain(vars);
    expect(encodeGrubEnv(env).toString("latin1").startsWith(`# GRUB Environment Block\n${vars}#`)).toBe(true);
  });

  it("refuses a block that does not fit or a bad name, and a file without the signature", () => {
    expect(() => encodeGrubEnv(new Map([["x", "y".repeat(1100)]]))).toThrow(/do not fit/);
    expect(() => encodeGrubEnv(new Map([["a b", "1"]]))).toThrow(/invalid variable name/);
    expect(() => parseGrubEnv("boot_counter=1\n")).toThrow(/signature/);
  });
});

describe("boot counting state", () => {
  const env = (o: Record<string, string>) => new Map(Object.entries(o));

  it("staging starts counting the new default; rollback stops it; --once sets next_entry", () => {
    const started = startCounting(env({ next_entry: "particle-1", other: "x" }), "2", 3);
    expect(Object.fromEntries(started)).toEqual({ next_entry: "particle-1", other: "x", particle_counted: "2", boot_counter: "3", boot_success: "0" });
    expect(Object.fromEntries(stopCounting(started))).toEqual({ next_entry: "particle-1", other: "x" });
    expect(setNextEntry(env({}), menuEntryId("1")).get("next_entry")).toBe("particle-1");
  });

  it.each([
    ["the counted deployment booted: blessed", { particle_counted: "2", boot_counter: "2", boot_success: "0" }, "2", true, { particle_counted: "2", boot_success: "1" }],
    ["a fallback boot of another deployment: not blessed", { particle_counted: "2", boot_counter: "0", boot_success: "0" }, "1", false, { particle_counted: "2", boot_counter: "0", boot_success: "0" }],
    ["nothing counted", { next_entry: "" }, "1", false, { next_entry: "" }],
    ["already blessed", { particle_counted: "2", boot_success: "1" }, "2", false, { particle_counted: "2", boot_success: "1" }],
    ["not booted by particle", { particle_counted: "2", boot_counter: "3" }, undefined, false, { particle_counted: "2", boot_counter: "3" }],
  ])("%s", (_what, before, booted, changed, after) => {
    const p = planBless(env(before), booted);
    expect(p.changed).toBe(changed);
    expect(Object.fromEntries(p.env)).toEqual(after);
  });
});
