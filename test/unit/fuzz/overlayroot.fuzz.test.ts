// Fuzzing overlayroot: the value (kernel argument or /etc/overlayroot.conf) gives a setting or an
// Error naming where it came from; the file, a shell fragment from the image or /etc, gives its
// value quickly whatever it holds.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseOverlayroot, parseOverlayrootConf, resolveOverlayroot } from "../../../boot/src/overlayroot.ts";
import { longRuns, outcome, params, RUNS, timeoutFor } from "./lib.ts";

const valueChars = fc.constantFrom("tmpfs", "device", "disabled", "crypt", ":", ",", "=", "swap", "recurse", "dev", "/dev/vdb", "LABEL=x", "timeout", "fstype", "ext4/xfs", "0", "1", "mkfs", " ", "");
const anyValue = fc.oneof(fc.array(valueChars, { maxLength: 10 }).map((a) => a.join("")), fc.string({ maxLength: 40 }));

const setting = fc.oneof(
  fc.constant({ text: "disabled", want: { mode: "disabled" } }),
  fc.tuple(fc.option(fc.boolean(), { nil: undefined }), fc.option(fc.boolean(), { nil: undefined })).map(([swap, rec]) => {
    const opts = [...(swap === undefined ? [] : [`swap=${+swap}`]), ...(rec === undefined ? [] : [`recurse=${+rec}`])];
    return { text: `tmpfs${opts.length ? ":" + opts.join(",") : ""}`, want: { mode: "tmpfs", swap: swap ?? false, recurse: rec ?? true } };
  }),
  fc.tuple(fc.constantFrom("/dev/vdb", "LABEL=data", "UUID=1234-abcd"), fc.option(fc.nat({ max: 600 }), { nil: undefined }), fc.option(fc.constantFrom("ext4", "xfs/btrfs"), { nil: undefined })).map(([dev, t, fs]) => ({
    text: `device:dev=${dev}${t === undefined ? "" : `,timeout=${t}`}${fs === undefined ? "" : `,fstype=${fs}`}`,
    want: { mode: "device", dev: dev.replace(/^LABEL=/, "/dev/disk/by-label/").replace(/^UUID=/, "/dev/disk/by-uuid/"), swap: false, recurse: true, fsTypes: fs?.split("/") ?? ["ext4", "xfs", "btrfs"], ...(t === undefined ? {} : { timeout: t }) },
  })),
);

describe("overlayroot fuzz", () => {
  it(`any value: a setting, or an Error naming where it came from (${RUNS} cases)`, () => {
    fc.assert(fc.property(anyValue, (v) => { outcome(() => parseOverlayroot(v, "overlayroot"), `overlayroot=${JSON.stringify(v)}: `); }), params());
  }, timeoutFor(RUNS, 1));

  it(`settings written in any quoting in overlayroot.conf, among comments and other variables, read back (${RUNS} cases)`, () => {
    const other = fc.constantFrom("# overlayroot=tmpfs", "overlayroot_cfgdisk=disabled", "", "  ", "OTHER=1");
    fc.assert(
      fc.property(setting, fc.constantFrom("", '"', "'"), fc.constantFrom("", " # set by hand", "  "), fc.array(other, { maxLength: 3 }), fc.array(other, { maxLength: 3 }), ({ text, want }, q, tail, before, after) => {
        const conf = [...before, `overlayroot=${q}${text}${q}${tail}`, ...after].join("\n");
        expect(resolveOverlayroot(undefined, parseOverlayrootConf(conf), "/etc/overlayroot.conf")).toEqual(want);
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));

  it(`any overlayroot.conf: its value or none, quickly; resolving it names the file on error (${RUNS} cases)`, () => {
    const conf = fc.oneof(
      fc.string({ maxLength: 100 }),
      longRuns(fc.constantFrom(" ", "\t", "#", '"', "'", "a")).map((s) => `overlayroot=a${s}`),
      longRuns(fc.constantFrom(" ", '"', "#")).map((s) => `overlayroot="${s}`),
    );
    fc.assert(
      fc.property(conf, (text) => {
        const r = outcome(() => parseOverlayrootConf(text));
        if (r.ok) outcome(() => resolveOverlayroot(undefined, r.value, "/etc/overlayroot.conf"), "/etc/overlayroot.conf: overlayroot=");
      }),
      params(),
    );
  }, timeoutFor(RUNS, 1));
});

describe("regressions", () => {
  it("a value with a long run of blanks before its end parses in linear time (the old comment pattern took 1.9 s at 50,000 blanks; found by the any-file property)", () => {
    const r = outcome(() => parseOverlayrootConf(`overlayroot=a${" ".repeat(200_000)}x`));
    expect(r.ok && r.value).toBe(`a${" ".repeat(200_000)}x`);
    expect(parseOverlayrootConf("overlayroot=tmpfs   # by hand")).toBe("tmpfs");
  });
});
