// Issue 11 end to end: sealed boot on OVMF's Secure Boot firmware with the owner's keys, enrolled
// by systemd-boot on a first boot in setup mode (cached). The boots build on each other on one
// disk: v1 boots sealed and stages v2 in the guest with the UKI `particle seal` built on the host
// (the keys stay off the machine); v2 boots; `particle rollback` makes v1 the default again; four
// attacks (a UKI with one changed byte of its command line, an unsigned UKI, an unsigned
// systemd-boot, v2's image swapped on disk) fail, and boot counting falls back to v1; a changed
// object gives EIO. Every boot that reaches the agent must be healthy (lib/qemu.ts), with no
// exemption: the refused boots never get there.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { corruptFile } from "./lib/disk.ts";
import { peSections, readSection } from "../../runtime/src/uki/pe.ts";
import { CANARY_PATH, canaryContent } from "./lib/guest.ts";
import { PARTICLE, parse, timing } from "./lib/cycle.ts";
import { KERNEL_ARGS, type BootResult } from "./lib/qemu.ts";
import { bootDisk } from "./lib/ovmf.ts";
import { bootSealed, efiFlag, enrolledVars, esp, machine, prepareSealed, V2_MARKER, V2_TEXT, withDisk, withPartitions, withTreeImage, type SealedInputs } from "./lib/sealed.ts";

// 60-100 s per boot in CI; the first also enables fs-verity on every object and stages v2.
const BOOT_TIMEOUT = 420_000;
const STAGE_BOOT_TIMEOUT = 480_000;
/** A refusal shows within seconds of the firmware starting; QEMU is stopped when it does. */
const REFUSED_TIMEOUT = 180_000;
const TEST_TIMEOUT = BOOT_TIMEOUT + 60_000;
const SETUP_TIMEOUT = 2_400_000;
/** What systemd-boot prints when the firmware's LoadImage refuses UKI `name`. */
const ukiRefused = (name: string) => new RegExp(`Error loading \\\\EFI\\\\Linux\\\\${name.replace(/\./g, "\\.")}: Access denied`);
/** What OVMF's boot manager prints when it refuses the loader itself. */
const LOADER_REFUSED = /BdsDxe: failed to load Boot\d+ .*: Access Denied/;

const PRELUDE = `set -euo pipefail
kv() { echo "KV:$1:$2"; }
now() { cut -d' ' -f1 /proc/uptime; }
kv efi-mounted "$(mountpoint -q /efi && echo yes || echo no)"
# Each deployment's last /etc carry-over (stage, then finalize at shutdown), by deployment id.
etc_carried() { for d in /sysroot/particle/deploy/*/; do kv "etc-$(basename "$d")" "$(cat "$d/etc-carryover.json" 2>/dev/null | tr -d ' \\n')"; done; }
kv secureboot "$(${efiFlag("SecureBoot")})"
kv setupmode "$(${efiFlag("SetupMode")})"
kv bootctl-sb "$(bootctl status 2>/dev/null | grep -m1 'Secure Boot:' | sed 's/^ *//')"
kv cmdline "$(cat /proc/cmdline)"
kv booted "$(sed -n 's/.*"id": *"\\([^"]*\\)".*/\\1/p' /run/particle-booted)"
kv image "$(sed -n 's/.*"imageDigest": *"\\([^"]*\\)".*/\\1/p' /run/particle-booted)"
kv ukis "$(ls /efi/EFI/Linux | tr '\\n' ' ')"
kv uki-booted "$(bootctl status 2>/dev/null | sed -n 's/^ *id: //p' | head -1)"
particle status
`;

const ON_V1 = `${PRELUDE}
kv sealed "$(particle status --json | tr -d ' \\n' | grep -o '"sealed":[a-z]*')"
kv status-line "$(particle status | grep '^Sealed:')"
set +e
particle kargs --append quiet >/tmp/kargs.out 2>&1
kv kargs-exit "$?"
set -e
kv kargs "$(tr -d '\\n' </tmp/kargs.out)"
kv canary "$(sha256sum /${CANARY_PATH} | cut -d' ' -f1)"
# The update as a user makes it: the new tree (here a disk), its UKI from the build host.
mkdir -p /run/tree-v2 && mount -o ro /dev/vdc /run/tree-v2
t0=$(now)
particle stage dir:/run/tree-v2 --uki ./v2.efi --version 2 --json >/tmp/stage.json
kv stage-seconds "$(awk "BEGIN{print $(now) - $t0}")"
kv stage "$(tail -1 /tmp/stage.json)"
umount /run/tree-v2
etc_carried
kv next "$(particle status --json | tr -d ' \\n' | grep -o '"defaultDeployment":"[^"]*"')"
kv ukis-staged "$(ls /efi/EFI/Linux | tr '\\n' ' ')"
`;

const ON_V2 = `${PRELUDE}
kv marker "$(cat /${V2_MARKER})"
etc_carried
set +e
cat /${CANARY_PATH} >/dev/null 2>/tmp/canary.err
kv canary-exit "$?"
set -e
kv canary-err "$(cat /tmp/canary.err)"
particle rollback --json >/tmp/rollback.json
kv rollback "$(tail -1 /tmp/rollback.json)"
kv next "$(particle status --json | tr -d ' \\n' | grep -o '"defaultDeployment":"[^"]*"')"
kv ukis-after "$(ls /efi/EFI/Linux | tr '\\n' ' ')"
`;

const PLANTED = "particle-planted.service";
const VAR_DEV = "/dev/disk/by-partlabel/particle-var";
/** Written to the encrypted /var on the first strict boot; must never show in the partition's bytes. */
const LUKS_MARKER = `particle-luks-marker-${process.pid}-${Date.now()}`;
const ON_STRICT = `${PRELUDE}
LUKS_MARKER=${LUKS_MARKER}
kv etc-mode "$(grep -o '"etc": *"[a-z]*"' /run/particle-booted || true)"
kv on-disk "$(ls /sysroot/particle/deploy/*/etc/upper/systemd/system/ | tr '\\n' ' ')"
kv planted-load "$(systemctl show -p LoadState --value ${PLANTED})"
kv planted-ran "$([ -e /var/lib/particle-planted ] && echo yes || echo no)"
kv efi-unit "$(systemctl show -p FragmentPath --value efi.mount)"
kv var-mode "$(grep -o '"var": *"[a-z-]*"' /run/particle-booted || true)"
kv var-source "$(findmnt -no SOURCE /var)"
kv luks-type "$(cryptsetup luksDump ${VAR_DEV} | sed -n 's/^Version:[[:space:]]*//p')"
kv luks-tokens "$(cryptsetup luksDump ${VAR_DEV} | grep -c 'systemd-tpm2' || true)"
kv luks-keyslots "$(cryptsetup luksDump ${VAR_DEV} | grep -cE '^[[:space:]]+[0-9]+: luks2' || true)"
kv luks-pubkey-pcrs "$(cryptsetup luksDump ${VAR_DEV} | sed -n 's/^[[:space:]]*tpm2-pubkey-pcrs:[[:space:]]*//p')"
kv luks-literal-pcrs "$(cryptsetup luksDump ${VAR_DEV} | sed -n 's/^[[:space:]]*tpm2-hash-pcrs:[[:space:]]*//p')"
# The running system (PCR 11 past leave-initrd) cannot get the key again, even with the UKI's own
# signature: the owner signed the enter-initrd value only.
objcopy -O binary --only-section=.pcrsig "/efi/EFI/Linux/$(bootctl status 2>/dev/null | sed -n 's/^ *id: //p' | head -1)" /tmp/pcrsig.json
set +e
timeout 120 /usr/lib/systemd/systemd-cryptsetup attach probe ${VAR_DEV} - tpm2-device=auto,headless=true,tpm2-signature=/tmp/pcrsig.json >/tmp/unseal.out 2>&1
kv unseal-exit "$?"
set -e
kv unseal-err "$(tail -2 /tmp/unseal.out | tr '\n' ' ')"
kv dpkg-sees "$(dpkg-query -W -f='\${Status}' systemd)"
kv luks-marker "$(cat /var/lib/particle-test-luks 2>/dev/null || echo none)"
echo "$LUKS_MARKER" >/var/lib/particle-test-luks
sync
`;

describe("sealed boot: Secure Boot with the owner's keys, signed UKIs that pin the image (issue 11)", () => {
  let s: SealedInputs;
  let m: { disk: string; vars: string };
  const work = mkdtempSync(join(tmpdir(), "particle-sealed-"));
  const times: Record<string, number> = {};
  let v1Image = "";
  let v1Id = "";
  let v2Id = "";

  let last: BootResult | undefined;
  let sealedV1: BootResult | undefined;
  const note = (name: string, r: BootResult) => {
    last = r;
    times[name] = r.wallMs / 1000;
    console.log(`${name}: ${timing(r)}`);
  };
  const good = async (name: string, script: string, more: { lateDisks?: string[]; files?: Record<string, string>; timeoutMs?: number; tpm?: string } = {}) => {
    const r = await bootSealed(m, { name, script, timeoutMs: BOOT_TIMEOUT, ...more });
    note(name, r);
    if (r.exitCode !== 0) throw new Error(`${name}: agent ${r.exitCode ?? (r.timedOut ? "timed out" : "never reported")} (console log: ${r.logFile})\n${r.output}\n${r.console.split("\n").slice(-40).join("\n")}`);
    return parse(r).kv;
  };
  /** A boot that must be refused: stopped as soon as the refusal shows on the console. */
  const refused = async (name: string, until: RegExp) => {
    const r = await bootSealed(m, { name, timeoutMs: REFUSED_TIMEOUT, until });
    note(name, r);
    expect(r.matched, `${name}: no refusal on the console (log ${r.logFile})`).toBe(true);
    expect(r.console).not.toMatch(/@@PARTICLE-AGENT-READY/);
    return r;
  };

  beforeAll(async () => {
    s = await prepareSealed((l) => console.log(l));
    const e = await enrolledVars(s, (l) => console.log(l));
    if (e.enrollment) times["enroll"] = e.enrollment.wallMs / 1000;
    m = machine(s, e.vars, work);
  }, SETUP_TIMEOUT);
  afterAll(() => {
    console.log(`sealed boot times (s): ${JSON.stringify(times)}; UKI size ${statSync(s.ukiV2).size} bytes`);
    rmSync(work, { recursive: true, force: true });
  });

  it("the sealed v1 boots with Secure Boot enforcing; status says sealed; kargs says how to re-seal; v2 is staged in the guest", async () => {
    const kv = await good("sealed-1-v1", ON_V1, { lateDisks: [s.treeV2], files: { "v2.efi": s.ukiV2 }, timeoutMs: STAGE_BOOT_TIMEOUT });
    v1Image = kv.image!;
    v1Id = kv.booted!;
    expect(kv.secureboot).toBe("1");
    expect(kv.setupmode).toBe("0");
    expect(kv["bootctl-sb"]).toMatch(/enabled/);
    expect(kv["efi-mounted"]).toBe("yes");
    // The command line is the UKI's: no deployment id, the image pinned by digest.
    expect(kv.cmdline).toMatch(/particle\.image=[0-9a-f]{64}/);
    expect(kv.cmdline).not.toMatch(/particle\.deploy=/);
    expect(kv.cmdline).toContain(`particle.image=${kv.image}`);
    expect(kv.booted).toMatch(/^\d+$/);
    // Counting: +3 became +2-1 when systemd-boot picked it; systemd-bless-boot drops the counter
    // once boot-complete.target is reached, which may come after the agent looks.
    expect(kv.ukis).toMatch(/^particle-1-[0-9a-f]{12}(\+2-1)?\.efi $/);
    expect(kv["uki-booted"]).toMatch(/^particle-1-[0-9a-f]{12}\.efi$/);
    expect(kv.sealed).toBe('"sealed":true');
    expect(kv["status-line"]).toMatch(/^Sealed: yes/);
    expect(kv["kargs-exit"]).toBe("1");
    expect(kv.kargs).toMatch(/command line is sealed.*particle seal/);
    expect(kv.canary).toBe(execFileSync("sha256sum", { input: canaryContent() }).toString().split(" ")[0]);
    // The update, staged in the guest with the UKI sealed on the host: the digest `particle seal`
    // computed there from the image alone is the one staging computes here.
    const st = JSON.parse(kv.stage!);
    v2Id = st.id;
    expect(st.imageDigest).toBe(s.sealV2.imageDigest);
    expect(st.entry).toMatch(/^particle-2-[0-9a-f]{12}\+3\.efi$/);
    expect(kv.next).toBe(`"defaultDeployment":"${v2Id}"`);
    expect(kv["ukis-staged"]).toMatch(new RegExp(`^particle-1-[0-9a-f]{12}(\\+2-1)?\\.efi particle-2-${s.sealV2.imageDigest.slice(0, 12)}\\+3\\.efi $`));
    // /etc (with the ESP mount install wrote) carried over at stage time.
    expect(JSON.parse(kv[`etc-${v2Id}`]!)).toMatchObject({ from: v1Id, to: v2Id, phase: "stage" });
    console.log(`stage of v2 in the guest (sealed, with --uki): ${kv["stage-seconds"]} s`);
  }, STAGE_BOOT_TIMEOUT + 60_000);

  it("a UKI that pins another image, or none, is refused; nothing is left behind", () => {
    const v1Uki = join(work, "v1.efi");
    withDisk(m.disk, (d) => {
      const [v1Name] = esp.ls(d.esp, "EFI/Linux").filter((n) => n.startsWith("particle-1-"));
      esp.get(d.esp, `EFI/Linux/${v1Name}`, v1Uki);
      // The ESP as `particle stage --esp` sees it: a directory with the sealed marker.
      const espDir = join(work, "esp");
      execFileSync("mkdir", ["-p", join(espDir, "loader")]);
      esp.get(d.esp, "loader/particle-sealed", join(espDir, "loader/particle-sealed"));
      withTreeImage(s.treeV2, (tree) => {
        const wrong = spawnSync(PARTICLE, ["stage", `dir:${tree}`, "--sysroot", d.root, "--esp", espDir, "--uki", v1Uki, "--version", "2"], { encoding: "utf8" });
        expect(wrong.status).toBe(1);
        expect(wrong.stderr).toMatch(/pins image [0-9a-f]{64}, not the staged image/);
        const noUki = spawnSync(PARTICLE, ["stage", `dir:${tree}`, "--sysroot", d.root, "--esp", espDir], { encoding: "utf8" });
        expect(noUki.status).toBe(2);
        expect(noUki.stderr).toMatch(/sealed: particle stage needs --uki/);
      });
      expect(execFileSync("ls", [join(d.root, "particle/deploy")]).toString().trim().split("\n").sort()).toEqual([v1Id, v2Id].sort());
      expect(execFileSync("ls", [join(espDir)]).toString().trim()).toBe("loader");
    });
  }, 300_000);

  it("v2 boots (its /etc finalized at v1's shutdown); particle rollback makes v1 the default; v1 boots", async () => {
    // One object of both trees changed on disk, past fs-verity (enabled on it during the first boot).
    writeFileSync(join(work, "canary"), canaryContent());
    const digest = execFileSync("fsverity", ["digest", "--compact", join(work, "canary")]).toString().trim();
    withPartitions(m.disk, (p) => corruptFile(p.root, `/particle/objects/${digest.slice(0, 2)}/${digest.slice(2)}`));
    const kv = await good("sealed-2-v2", ON_V2);
    expect(kv.secureboot).toBe("1");
    expect(kv["efi-mounted"]).toBe("yes");
    expect(kv.marker).toBe(V2_TEXT.trim());
    expect(kv.image).toBe(s.sealV2.imageDigest);
    expect(kv.booted).toBe(v2Id);
    expect(kv["uki-booted"]).toMatch(/^particle-2-/);
    expect(JSON.parse(kv[`etc-${v2Id}`]!)).toMatchObject({ from: v1Id, to: v2Id, phase: "finalize" });
    expect(kv["canary-exit"]).toBe("1");
    expect(kv["canary-err"]).toMatch(/Input\/output error/);
    // Rollback: the signed order cannot change, so v2 gets no tries left and the glob default skips it.
    const rb = JSON.parse(kv.rollback!);
    expect(rb).toMatchObject({ target: v1Id, from: v2Id, why: "rollback" });
    expect(rb.entry).toMatch(/^particle-1-[0-9a-f]{12}\.efi$/);
    expect(kv.next).toBe(`"defaultDeployment":"${v1Id}"`);
    expect(kv["ukis-after"]).toMatch(/^particle-1-[0-9a-f]{12}\.efi particle-2-[0-9a-f]{12}\+0\.efi $/);
    const back = await good("sealed-3-rollback-v1", PRELUDE);
    sealedV1 = last;
    expect(back.image).toBe(v1Image);
    expect(back.booted).toBe(v1Id);
    expect(back.secureboot).toBe("1");
  }, 2 * TEST_TIMEOUT);

  it("strict mode (particle.etc=transient, particle.var=luks): a planted unit does not run; /var is LUKS2 unlocked by the TPM for the owner's UKIs only; a plaintext /var is refused", async () => {
    // v2's image sealed again with the strict command line, as version 3: the highest, so the default.
    const strict = join(work, "strict.efi");
    const sealed = withTreeImage(s.treeV2, (tree) => JSON.parse(execFileSync(PARTICLE, ["seal", `dir:${tree}`, "--keys", s.keys, "--initramfs", s.initrd,
      "--version", "3", "--out", strict, "--json", "--karg", "particle.etc=transient", "--karg", "particle.var=luks", ...KERNEL_ARGS.split(" ").flatMap((a) => ["--karg", a])]).toString().trim().split("\n").pop()!));
    expect(sealed.imageDigest).toBe(s.sealV2.imageDigest);
    const name = `particle-3-${sealed.imageDigest.slice(0, 12)}`;
    withDisk(m.disk, (d) => {
      // What an attacker with the disk (or root on a running v2) leaves for the next boot.
      const sysd = join(d.root, "particle/deploy", v2Id, "etc/upper/systemd/system");
      execFileSync("mkdir", ["-p", join(sysd, "multi-user.target.wants")]);
      writeFileSync(join(sysd, PLANTED), "[Unit]\nDescription=planted by an attacker\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo owned >/var/lib/particle-planted'\n[Install]\nWantedBy=multi-user.target\n");
      execFileSync("ln", ["-sf", `../${PLANTED}`, join(sysd, "multi-user.target.wants", PLANTED)]);
      esp.put(d.esp, strict, `EFI/Linux/${name}+3.efi`);
    });
    let kv: Record<string, string>;
    let again: Record<string, string>;
    let plaintext: BootResult;
    const tpm = join(work, "tpm");
    try {
      // The first strict boot makes /var: the partition install left blank is formatted, the TPM
      // enrolled, the filesystem made; the second only unlocks it.
      kv = await good("sealed-3b-strict-v2", ON_STRICT, { tpm });
      again = await good("sealed-3c-strict-again", ON_STRICT, { tpm });
      // An attacker replaces the encrypted /var with a plaintext one they filled.
      const inPartition = withPartitions(m.disk, (p) => spawnSync("grep", ["-q", "-a", "-F", LUKS_MARKER, p.var]).status);
      expect(inPartition, "the marker written to /var is readable in the partition's raw bytes").toBe(1);
      withPartitions(m.disk, (p) => execFileSync("mkfs.ext4", ["-q", "-F", "-L", "particle-var", p.var]));
      plaintext = await refused("sealed-3d-strict-plaintext-var", /particle\.var=luks: \S+ holds an ext2\/3\/4 filesystem, not a LUKS2 volume/);
    } finally {
      // The attacks below expect v1 and v2's UKIs only.
      withPartitions(m.disk, (p) => {
        for (const f of esp.ls(p.esp, "EFI/Linux").filter((n) => n.startsWith("particle-3-"))) esp.rm(p.esp, `EFI/Linux/${f}`);
      });
    }
    expect(kv.secureboot).toBe("1");
    expect(kv.cmdline).toContain("particle.etc=transient");
    expect(kv.booted).toBe(v2Id);
    expect(kv["uki-booted"]).toBe(`${name}.efi`);
    expect(kv["etc-mode"]).toMatch(/"etc": *"transient"/);
    expect(kv["on-disk"]).toContain(PLANTED);
    expect(kv["planted-load"]).toBe("not-found");
    expect(kv["planted-ran"]).toBe("no");
    // The ESP came from particle-boot's runtime unit (the disk's /etc upper is not used), so
    // systemd-bless-boot could bless the boot: the agent found no failed unit.
    expect(kv["efi-mounted"]).toBe("yes");
    expect(kv["efi-unit"]).toBe("/run/systemd/system/efi.mount");
    // /var: made on the first boot, LUKS2 with one key slot (the TPM2 token's: the one-time key is
    // gone), bound to the owner's public key over PCR 11 and no literal PCRs.
    expect(kv["var-mode"]).toMatch(/"var": *"luks-provisioned"/);
    expect(kv["var-source"]).toBe("/dev/mapper/particle-var");
    expect(kv["luks-type"]).toBe("2");
    expect(kv["luks-tokens"]).toBe("1");
    expect(kv["luks-keyslots"]).toBe("1");
    expect(kv["luks-pubkey-pcrs"]).toBe("11");
    expect(kv["luks-literal-pcrs"]).toBe("");
    expect(kv["unseal-exit"], kv["unseal-err"]).not.toBe("0");
    expect(kv["luks-marker"]).toBe("none");
    // The deployment's dpkg database is bound over the new /var's /var/lib/dpkg, as on the root's.
    expect(kv["dpkg-sees"]).toBe("install ok installed");
    // The second boot unlocked what the first made, and found what it wrote.
    expect(again["var-mode"]).toMatch(/"var": *"luks"/);
    expect(again["var-source"]).toBe("/dev/mapper/particle-var");
    expect(again["luks-marker"]).toBe(LUKS_MARKER);
    expect(again["planted-ran"]).toBe("no");
    expect(again["dpkg-sees"]).toBe("install ok installed");
    expect(plaintext!.console).toMatch(/particle-boot: FAILED: particle\.var=luks/);
  }, TEST_TIMEOUT * 3);

  /** Runs `attack` on the ESP, boots until the refusal shows, then puts the ESP back as it was. */
  const espAttack = async (name: string, attack: (dev: string) => (dev: string) => void, until: RegExp) => {
    let undo: (dev: string) => void = () => {};
    withPartitions(m.disk, (p) => { undo = attack(p.esp); });
    try {
      return await refused(name, until);
    } finally {
      withPartitions(m.disk, (p) => undo(p.esp));
    }
  };
  /** What an attacker with the disk does to make systemd-boot pick their entry: edit loader.conf. */
  const plantUki = (file: string, name: string) => (dev: string) => {
    const conf = join(work, "loader.conf");
    esp.get(dev, "loader/loader.conf", conf);
    writeFileSync(join(work, "evil.conf"), `default ${name}\ntimeout 0\n`);
    esp.put(dev, join(work, "evil.conf"), "loader/loader.conf");
    esp.put(dev, file, `EFI/Linux/${name}`);
    return (d: string) => {
      esp.rm(d, `EFI/Linux/${name}`);
      esp.put(d, conf, "loader/loader.conf");
    };
  };

  it("a UKI with one changed byte of its command line is refused", async () => {
    const bytes = readFileSync(s.ukiV2);
    const c = peSections(bytes).find((x) => x.name === ".cmdline")!;
    const text = readSection(bytes, ".cmdline")!.toString();
    // One hex digit of the pinned digest: the command line an attacker wants is another image.
    const at = c.rawOffset + text.indexOf("particle.image=") + "particle.image=".length;
    bytes[at] = bytes[at] === 0x30 ? 0x31 : 0x30;
    writeFileSync(join(work, "tampered.efi"), bytes);
    await espAttack("sealed-4-tampered-uki", plantUki(join(work, "tampered.efi"), "particle-9-tampered.efi"), ukiRefused("particle-9-tampered.efi"));
  }, TEST_TIMEOUT);

  it("an unsigned UKI is refused", async () => {
    const unsigned = join(work, "unsigned.efi");
    execFileSync("cp", [s.ukiV2, unsigned]);
    execFileSync("sbattach", ["--remove", unsigned]);
    await espAttack("sealed-5-unsigned-uki", plantUki(unsigned, "particle-9-unsigned.efi"), ukiRefused("particle-9-unsigned.efi"));
  }, TEST_TIMEOUT);

  it("an unsigned systemd-boot is refused by the firmware", async () => {
    await espAttack("sealed-6-unsigned-loader", (dev) => {
      const saved = join(work, "BOOTX64.EFI");
      esp.get(dev, "EFI/BOOT/BOOTX64.EFI", saved);
      esp.put(dev, join(s.g.dir, "usr/lib/systemd/boot/efi/systemd-bootx64.efi"), "EFI/BOOT/BOOTX64.EFI");
      return (d: string) => esp.put(d, saved, "EFI/BOOT/BOOTX64.EFI");
    }, LOADER_REFUSED);
  }, TEST_TIMEOUT);

  it("v2's image swapped on disk for another: particle-boot refuses it by digest, boot counting falls back to v1", async () => {
    // Another valid EROFS image: one of a small tree, staged aside (this host cannot read the
    // disk's fs-verity files).
    execFileSync("mkdir", ["-p", join(work, "other-tree/usr/bin")]);
    writeFileSync(join(work, "other-tree/usr/bin/evil"), "#!/bin/sh\necho owned\n");
    const other = JSON.parse(execFileSync(PARTICLE, ["stage", `dir:${join(work, "other-tree")}`, "--sysroot", join(work, "other-sysroot"), "--json"]).toString().trim().split("\n").pop()!);
    withDisk(m.disk, (d) => {
      const v2 = join(d.root, "particle/images", `${s.sealV2.imageDigest}.erofs`);
      // A new file in its place (fs-verity cannot be switched off on the old one): what an
      // attacker with the disk can write.
      execFileSync("cp", [join(work, "other-sysroot/particle/images", `${other.imageDigest}.erofs`), `${v2}.new`]);
      execFileSync("mv", [`${v2}.new`, v2]);
      const [v2Uki] = esp.ls(d.esp, "EFI/Linux").filter((n) => n.startsWith("particle-2-"));
      // One try left: each failed try is a boot into the initramfs.
      esp.mv(d.esp, `EFI/Linux/${v2Uki}`, `EFI/Linux/${v2Uki!.replace(/(\+[0-9-]+)?\.efi$/, "+1.efi")}`);
    });
    // The whole reason is waited for: QEMU is stopped at the first match, and a pattern that
    // stopped at "FAILED" once cut the line before its reason reached the console.
    const r = await refused("sealed-7-swapped-image", /particle-boot: FAILED: .*(does not match|fs-verity)/);
    const kv = await good("sealed-8-fallback-v1", PRELUDE);
    expect(kv.image).toBe(v1Image);
    expect(kv.secureboot).toBe("1");
    expect(kv.ukis).toMatch(/particle-2-[0-9a-f]{12}\+0-1\.efi/);
  }, 2 * TEST_TIMEOUT);

  it("for comparison, the same v1 boots unsealed: a BLS entry, Secure Boot off", async () => {
    // The same disk and deployment, through the firmware and the BLS entry an unsealed install
    // uses: the difference is the signature checks and the larger single file the loader reads.
    // Debian keeps the kernel in /boot (the tree has no usr/lib/modules/<kver>/vmlinuz).
    const kernel = s.g.kernel;
    withPartitions(m.disk, (p) => {
      esp.put(p.esp, kernel, "unsealed-vmlinuz");
      esp.put(p.esp, s.initrd, "unsealed-initrd.img");
      writeFileSync(join(work, "unsealed.conf"), `title unsealed v1\nlinux /unsealed-vmlinuz\ninitrd /unsealed-initrd.img\n` +
        `options root=LABEL=particle-root rw particle.deploy=${v1Id} particle.image=${v1Image} ${KERNEL_ARGS}\n`);
      esp.put(p.esp, join(work, "unsealed.conf"), "loader/entries/unsealed.conf");
      // secure-boot-enroll's default (if-safe) would enroll the keys still under loader/keys/auto
      // into the setup-mode firmware and reboot: this boot is the one without Secure Boot.
      writeFileSync(join(work, "unsealed-loader.conf"), "default unsealed.conf\ntimeout 0\nsecure-boot-enroll off\n");
      esp.put(p.esp, join(work, "unsealed-loader.conf"), "loader/loader.conf");
    });
    const r = await bootDisk({ name: "sealed-9-unsealed-v1", disk: m.disk, script: PRELUDE, timeoutMs: BOOT_TIMEOUT });
    note("sealed-9-unsealed-v1", r);
    const kv = parse(r).kv;
    expect(r.exitCode).toBe(0);
    expect(kv.image).toBe(v1Image);
    expect(kv.secureboot).not.toBe("1");
    console.log(`figures: boot to agent-ready, sealed v1 (Secure Boot, signed UKI): ${timing(sealedV1!)}; unsealed v1 (BLS entry): ${timing(r)}; ` +
      `UKI size ${statSync(s.ukiV2).size} bytes (${(statSync(s.ukiV2).size / 1048576).toFixed(1)} MiB)`);
  }, TEST_TIMEOUT);
});
