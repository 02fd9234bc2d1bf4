import { describe, expect, it } from "vitest";
import { parseCmdline, splitArg, splitCmdline } from "../../boot/src/cmdline.ts";

const D = "a".repeat(64);
const ok = `particle.deploy=1 particle.image=${D}`;

describe("splitCmdline (kernel rule: double quotes group, no escapes)", () => {
  it.each([
    ["", []],
    ["  ro   quiet\n", ["ro", "quiet"]],
    ['a="b c" d', ['a="b c"', "d"]],
    ['"a=b c" d', ['"a=b c"', "d"]],
    ['a=\\"b c\\"', ['a=\\"b c\\"']],
    ["tab\tsep", ["tab", "sep"]],
    ['unterminated="x y', ['unterminated="x y']],
  ])("%j", (text, args) => expect(splitCmdline(text)).toEqual(args));
});

describe("splitArg", () => {
  it.each([
    ["ro", { key: "ro", value: undefined }],
    ['a="b c"', { key: "a", value: "b c" }],
    ['"a=b c"', { key: "a", value: "b c" }],
    ["a=b=c", { key: "a", value: "b=c" }],
    ["a=", { key: "a", value: "" }],
    ['a=x"y', { key: "a", value: 'x"y' }],
  ])("%j", (arg, kv) => expect(splitArg(arg)).toEqual(kv));
});

describe("parseCmdline accepts", () => {
  it.each([
    [ok, { deploy: "1", image: D }],
    [`BOOT_IMAGE=/vmlinuz root=/dev/vda2 ro ${ok} quiet`, { deploy: "1", image: D }],
    [`${ok} particle.verity=optional`, { deploy: "1", image: D, verity: "optional" }],
    [`${ok} particle.verity=require`, { deploy: "1", image: D, verity: "require" }],
    [`${ok} particle.verity=off`, { deploy: "1", image: D, verity: "off" }],
    [`${ok} particle.deploy=1`, { deploy: "1", image: D }],
    // A sealed UKI names the image only; particle-boot finds the deployment by its digest.
    [`particle.image=${D}`, { image: D }],
    [`particle.deploy="2-ab12" particle.image=${D}`, { deploy: "2-ab12", image: D }],
    // Strict mode of a sealed UKI: /etc with a tmpfs upper.
    [`particle.image=${D} particle.etc=transient`, { image: D, etc: "transient" }],
    [`${ok} particle.etc=persistent`, { deploy: "1", image: D, etc: "persistent" }],
    // Strict /var: the TPM2-unlocked LUKS2 partition.
    [`particle.image=${D} particle.etc=transient particle.var=luks`, { image: D, etc: "transient", var: "luks" }],
    [`${ok} overlayroot=tmpfs`, { deploy: "1", image: D, overlayroot: { mode: "tmpfs", swap: false, recurse: true } }],
    [`${ok} overlayroot=tmpfs:swap=1,recurse=0`, { deploy: "1", image: D, overlayroot: { mode: "tmpfs", swap: true, recurse: false } }],
    [`${ok} overlayroot=tmpfs overlayroot=disabled`, { deploy: "1", image: D, overlayroot: { mode: "disabled" } }],
    [`${ok} overlayroot=`, { deploy: "1", image: D, overlayroot: { mode: "disabled" } }],
  ])("%s", (text, plan) => expect(parseCmdline(text)).toEqual(plan));
});

describe("parseCmdline refuses, naming the argument", () => {
  it.each([
    ["", "particle.image"],
    ["particle.deploy=1", "particle.image"],
    [`particle.deploy particle.image=${D}`, "particle.deploy"],
    [`particle.deploy= particle.image=${D}`, "particle.deploy"],
    [`particle.deploy=Bad/Id particle.image=${D}`, "particle.deploy=Bad/Id"],
    [`particle.deploy=../etc particle.image=${D}`, "particle.deploy=../etc"],
    ["particle.deploy=1 particle.image=abc", "particle.image=abc"],
    [`particle.deploy=1 particle.image=${"A".repeat(64)}`, "particle.image="],
    [`particle.deploy=1 particle.image=${D}0`, "particle.image="],
    [`${ok} particle.image=${"b".repeat(64)}`, "particle.image: given twice"],
    [`${ok} particle.verity=maybe`, "particle.verity=maybe"],
    [`${ok} particle.verity`, "particle.verity"],
    [`${ok} particle.verty=off`, "particle.verty"],
    [`${ok} particle.etc=tmpfs`, "particle.etc=tmpfs"],
    [`${ok} particle.var=plain`, "particle.var=plain"],
    [`${ok} particle.etc=transient particle.etc=persistent`, "particle.etc: given twice"],
    [`${ok} overlayroot`, "overlayroot"],
    [`${ok} overlayroot=tmpfs2`, "overlayroot="],
    [`${ok} overlayroot=crypt:dev=/dev/vdb`, "overlayroot="],
    [`${ok} overlayroot=tmpfs:swap=2`, "overlayroot="],
    [`${ok} overlayroot=device`, "overlayroot="],
  ])("%s", (text, name) => {
    expect(() => parseCmdline(text)).toThrow(new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  });
});
