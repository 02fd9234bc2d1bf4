// The update cycle on an installed disk, shared by test/qemu/cycle.test.ts and `make demo`:
// install the trixie tree (A) to a disk image, boot it through OVMF + systemd-boot, stage B inside
// the guest from a second disk, reboot into B, roll back, reboot into A, clean up.
// Expensive inputs are cached under ~/.cache/particle-os, keyed by what they are built from.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cached, cacheRoot, fileHash, hashOf } from "./cache.ts";
import { makeExt4 } from "./disk.ts";
import { guestTree, initramfs, REPO, sh, SUITE, type GuestTree, type Suite } from "./guest.ts";
import { KERNEL_ARGS, type BootResult } from "./qemu.ts";

export const PARTICLE = join(REPO, "dist/particle");
/** The one file B adds: its object is B's alone (nothing in A has these bytes). */
export const B_MARKER = "usr/share/particle-test/update-b";
export const B_MARKER_TEXT = "Particle-OS update B: this file exists only in deployment B\n";
/** Update C (the power-cut, fallback and cleanup steps): tree A plus a file of its own. */
export const C_MARKER = "usr/share/particle-test/update-c";
export const C_MARKER_TEXT = "Particle-OS update C: staged after a power cut, booted after a failing D\n";
/**
 * A health check that always fails (issue 14). The failing update of each bootloader's cycle (D
 * here, C in grub.test.ts) ships it in its image: the deployment boots, is never marked good, and
 * its boot loader falls back once its tries are used up.
 */
export const FAILING_CHECK = "usr/lib/particle/health.d/50-particle-test-fails";
export const FAILING_CHECK_TEXT = "#!/bin/sh\necho 'particle-test: this deployment is meant to fail its health check'\nexit 1\n";
export const FAILING_CHECK_SAYS = "particle-test: this deployment is meant to fail its health check";
const DISK_SIZE = "4G";
/** Bump when the install step or the update tree's recipe changes. */
const CYCLE_VERSION = "1";

export interface CycleInputs {
  g: GuestTree;
  initrd: string;
  /** Pristine installed disk (cached; copy before booting it). */
  installed: string;
  /** ext4 image holding tree B, attached as /dev/vdc. */
  treeB: string;
  /** ext4 image holding tree C, attached as /dev/vdc in the later boots. */
  treeC: string;
  /** ext4 image holding tree D (C plus FAILING_CHECK), attached as /dev/vdd in boot 4. */
  treeD: string;
  installLog: string;
}

/**
 * `particle install` of the guest tree onto a sparse disk image. The harness's initramfs (same
 * tree, same dracut module) is passed with --initramfs: dracut in a chroot is 1-2 minutes that the
 * issue-3 tests already spend and cache. The harness's kernel arguments go into the entry (serial
 * console, no watchdog noise under TCG), and `particle stage` carries them to later entries.
 */
async function installedDisk(g: GuestTree, initrd: string, log: (m: string) => void): Promise<{ path: string; log: string }> {
  // "log": the install's output is kept beside the disk (tests read what install said), so disks
  // cached before it was kept are built again.
  const key = hashOf(CYCLE_VERSION, "log", g.key, initrd, await fileHash(PARTICLE), DISK_SIZE);
  // Named so that the cache's pruning (kindOf) leaves it alone: a few KB beside each disk.
  const logPath = join(cacheRoot(), `disk-a-${key}.img.log`);
  let out = "(cached)";
  const path = await cached(`disk-a-${key}.img`, async (tmp) => {
    const args = ["install", "--to-disk", tmp, "--source", `dir:${g.dir}`, "--size", DISK_SIZE, "--initramfs", initrd];
    for (const a of KERNEL_ARGS.split(" ")) args.push("--karg", a);
    log(`particle ${args.join(" ")}`);
    const t = Date.now();
    const r = spawnSync(PARTICLE, args, { encoding: "utf8" });
    out = `${r.stdout}${r.stderr}`;
    if (r.status !== 0) throw new Error(`particle install failed (${r.status}):\n${out}`);
    log(`${out.trim()}\ninstalled in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    writeFileSync(`${logPath}.tmp`, out);
    renameSync(`${logPath}.tmp`, logPath);
  });
  return { path, log: existsSync(logPath) ? readFileSync(logPath, "utf8") : out };
}

/** An update: tree A plus one new file, as an ext4 image the guest mounts read-only and stages from. */
async function updateImage(g: GuestTree, name: string, files: Array<[path: string, text: string, mode: number]>): Promise<string> {
  return cached(`tree-${name}-${hashOf(CYCLE_VERSION, g.key, JSON.stringify(files))}.img`, async (out) => {
    const dir = `${out}.d`;
    try {
      sh("cp", ["-a", "--reflink=auto", g.dir, dir]);
      for (const [path, text, mode] of files) {
        mkdirSync(join(dir, path, ".."), { recursive: true });
        writeFileSync(join(dir, path), text);
        chmodSync(join(dir, path), mode);
      }
      makeExt4(out, dir, 64);
    } finally {
      sh("rm", ["-rf", dir]);
    }
  });
}

export async function prepareCycle(log: (m: string) => void = () => {}, suite: Suite = SUITE): Promise<CycleInputs> {
  const g = await guestTree(suite);
  const initrd = await initramfs(g);
  const installed = await installedDisk(g, initrd, log);
  const treeB = await updateImage(g, "b", [[B_MARKER, B_MARKER_TEXT, 0o644]]);
  const treeC = await updateImage(g, "c", [[C_MARKER, C_MARKER_TEXT, 0o644]]);
  const treeD = await updateImage(g, "d", [[C_MARKER, C_MARKER_TEXT, 0o644], [FAILING_CHECK, FAILING_CHECK_TEXT, 0o755]]);
  return { g, initrd, installed: installed.path, treeB, treeC, treeD, installLog: installed.log };
}

/** A working copy of the installed disk (sparse) with fresh EFI variables. */
export function copyDisk(c: CycleInputs, dest: string): string {
  sh("cp", ["--sparse=always", c.installed, dest]);
  sh("rm", ["-f", `${dest}.vars.fd`]);
  return dest;
}

// Each script prints `particle status` for people and `JSON:<name>:<one line>` / `KV:<key>:<value>`
// for the host to check.
export const PRELUDE = `set -euo pipefail
j() { echo "JSON:$1:$(tr -d '\\n')"; }
kv() { echo "KV:$1:$2"; }
now() { cut -d' ' -f1 /proc/uptime; }
kv cmdline "$(cat /proc/cmdline)"
kv booted "$(cat /run/particle-booted 2>/dev/null | tr '\\n' ' ')"
`;

/** Boot 1, on A: stage B from /dev/vdc (which makes it the next boot's default). */
export const STAGE_B = `${PRELUDE}
particle status
particle status --json | j before
mkdir -p /run/tree-b && mount -o ro /dev/vdc /run/tree-b
t0=$(now)
particle stage dir:/run/tree-b
kv stage-seconds "$(awk "BEGIN{print $(now) - $t0}")"
umount /run/tree-b
particle status
particle status --json | j after
`;

/** Boot 2, on B: check the new file, find its object, roll back. */
export const ON_B = `${PRELUDE}
kv marker "$(cat /${B_MARKER})"
d=$(fsverity digest /${B_MARKER} | cut -d' ' -f1 | sed 's/^sha256://')
kv object "$d"
[ -e "/sysroot/particle/objects/\${d:0:2}/\${d:2}" ] && kv object-exists yes || kv object-exists no
particle status
particle status --json | j status
particle rollback
particle status --json | j after
`;

/** Boot 3, on A again: cleanup, and whether B's object is still in the store. */
export function backOnA(object: string): string {
  return `${PRELUDE}
particle status
particle status --json | j status
particle cleanup
particle status --json | j after
[ -e "/sysroot/particle/objects/${object.slice(0, 2)}/${object.slice(2)}" ] && kv object-exists yes || kv object-exists no
particle status
`;
}

const objectOf = (digest: string) => `/sysroot/particle/objects/${digest.slice(0, 2)}/${digest.slice(2)}`;

/** Boot 3, continued: stage C from /dev/vdc and let the host cut the power half-way (POWER_CUT). */
export const POWER_CUT = /@@\| POWER-CUT-NOW/;
export const STAGE_C_CUT = `
mkdir -p /run/tree-c && mount -o ro /dev/vdc /run/tree-c
particle stage dir:/run/tree-c >/run/stage-c.log 2>&1 &
pid=$!
# Cut once objects are being written: the scan is done and staging reads and copies files.
for i in $(seq 1 600); do grep -q scanned /run/stage-c.log && break; sleep 1; done
sleep 10
kill -0 $pid 2>/dev/null && kv stage-running yes || kv stage-running no
kv tmp-at-cut "$(ls /sysroot/particle/tmp | wc -l)"
kv deployments-at-cut "$(ls /sysroot/particle/deploy | tr '\\n' ' ')"
echo POWER-CUT-NOW
sleep 900
`;

/**
 * Boot 4, after the power cut, on A: nothing of C may exist. Then stage C for real (/dev/vdc), and
 * D (/dev/vdd: C's tree plus FAILING_CHECK), which boots but fails its health check.
 * D gets one try instead of three: each failed try is the same boot under TCG, and the counting
 * itself (+3 → +2-1 → …) is systemd-boot's; host tests check that entries get +3.
 */
export const AFTER_CUT = `${PRELUDE}
particle status --json | j status
kv deployments "$(ls /sysroot/particle/deploy | tr '\\n' ' ')"
kv entries "$(ls /efi/loader/entries | tr '\\n' ' ')"
kv tmp-left "$(ls /sysroot/particle/tmp | wc -l)"
mkdir -p /run/tree-c && mount -o ro /dev/vdc /run/tree-c
c=$(particle stage --json dir:/run/tree-c | sed -n 's/.*"id":"\\([^"]*\\)".*/\\1/p')
kv c "$c"
kv tmp-after-stage "$(ls /sysroot/particle/tmp | wc -l)"
umount /run/tree-c
mkdir -p /run/tree-d && mount -o ro /dev/vdd /run/tree-d
d=$(particle stage --json dir:/run/tree-d | sed -n 's/.*"id":"\\([^"]*\\)".*/\\1/p')
kv d "$d"
umount /run/tree-d
f=$(grep -lE "particle[.]deploy=$d( |$)" /efi/loader/entries/*.conf)
mv "$f" "\${f%+3.conf}+1.conf"
sync
kv d-entry "$(basename "\${f%+3.conf}+1.conf")"
particle status --json | j after
`;

/**
 * The boot of a deployment whose health check fails (exempt from the harness's health rule): what
 * became of particle-health, the target it guards and the units that would mark the deployment good.
 */
export const HEALTH_FAILED = `
kv health "$(systemctl is-active particle-health.service || true)"
kv boot-complete "$(systemctl is-active boot-complete.target || true)"
kv bless-boot "$(systemctl is-active systemd-bless-boot.service || true)"
kv particle-bless "$(systemctl is-active particle-bless.service || true)"
journalctl -b -u particle-health.service -o cat --no-pager | sed 's/^/HEALTH: /'
`;

/** Boot 5, on D: its health check fails; the entry keeps its spent counter (+0-1). */
export const D_FAILS = `${PRELUDE}
particle status --json | j status
${HEALTH_FAILED}
kv entries "$(ls /efi/loader/entries | tr '\\n' ' ')"
`;

/**
 * Stops a cleanup half-way, after it removed the entries and moved the first deployment aside, and
 * has the host cut the power there (POWER_CUT) with nothing synced since. PARTICLE_DIE_AT is the
 * crash campaign's fault hook (runtime/src/system/die-at.ts): the step is hit on every run, where a
 * timed cut would mostly miss a cleanup that takes a second.
 */
export const CLEANUP_CUT = `set +e
PARTICLE_DIE_AT=cleanup:deployment-moved particle cleanup
kv cleanup-exit "$?"
set -e
kv tmp-at-cut "$(ls /sysroot/particle/tmp | wc -l)"
echo POWER-CUT-NOW
sleep 900
`;

/**
 * Boot 6, after D failed and systemd-boot fell back to C: the cleanup that frees B and D is cut
 * short by a power cut (CLEANUP_CUT).
 */
export const FALLBACK_CLEANUP_CUT = `${PRELUDE}
kv marker-c "$(cat /${C_MARKER})"
particle status
particle status --json | j status
${CLEANUP_CUT}`;

/**
 * After a power cut, every deployment left is whole: its manifest and its image are there (KV
 * deployments-whole). particle verify would re-read every object, minutes under TCG; fs-verity
 * checks each object on every read anyway, and the host crash campaign runs verify after every kill.
 */
export const DEPLOYMENTS_WHOLE = `whole=yes
for d in /sysroot/particle/deploy/*/; do
  img=$(sed -n 's/.*"imageDigest": *"\\([0-9a-f]*\\)".*/\\1/p' "$d/deployment.json" | head -1)
  [ -n "$img" ] && [ -e "/sysroot/particle/images/$img.erofs" ] || whole=no
done
kv deployments-whole "$whole"`;

/** Boot 7, after the cut: C boots, its deployments are whole, the next cleanup finishes the job. */
export function afterCleanupCut(objectB: string): string {
  return `${PRELUDE}
particle status --json | j status
${DEPLOYMENTS_WHOLE}
particle cleanup
kv tmp-after "$(ls /sysroot/particle/tmp | wc -l)"
particle status --json | j after
kv deployments "$(ls /sysroot/particle/deploy | tr '\\n' ' ')"
kv entries "$(ls /efi/loader/entries | tr '\\n' ' ')"
[ -e "${objectOf(objectB)}" ] && kv object-b yes || kv object-b no
`;
}

/**
 * The store seen by an unprivileged user of the booted system: no object or image can be read, no
 * private directory even listed (the caches' own files, such as devino.bin, keep the modes their
 * writers gave them, behind cache/'s 0700); /etc/shadow only through the mount, where its own mode
 * keeps nobody out.
 */
export const PRIVATE_STORE = `
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
nobody ls /sysroot/particle/objects >/dev/null 2>&1 && kv nobody-lists-objects yes || kv nobody-lists-objects no
shadow=$(fsverity digest /etc/shadow | cut -d' ' -f1 | sed 's/^sha256://')
nobody cat "/sysroot/particle/objects/\${shadow:0:2}/\${shadow:2}" >/dev/null 2>&1 && kv nobody-reads-shadow-object yes || kv nobody-reads-shadow-object no
cat "/sysroot/particle/objects/\${shadow:0:2}/\${shadow:2}" >/dev/null && kv root-reads-shadow-object yes || kv root-reads-shadow-object no
nobody cat /etc/shadow >/dev/null 2>&1 && kv nobody-reads-shadow yes || kv nobody-reads-shadow no
nobody cat /etc/os-release >/dev/null 2>&1 && kv nobody-reads-os-release yes || kv nobody-reads-os-release no
kv open-store-files "$(find /sysroot/particle/objects /sysroot/particle/images -type f -perm /077 | wc -l)"
kv store-dir-modes "$(stat -c %a /sysroot/particle/objects /sysroot/particle/images /sysroot/particle/cache /sysroot/particle/tmp | tr '\\n' ' ')"
`;

export interface Parsed {
  json: Record<string, any>;
  kv: Record<string, string>;
}

export function parse(r: BootResult): Parsed {
  const json: Record<string, any> = {};
  const kv: Record<string, string> = {};
  for (const line of r.output.split("\n")) {
    let m = /^JSON:([^:]+):(.*)$/.exec(line);
    if (m) json[m[1]!] = JSON.parse(m[2]!);
    else if ((m = /^KV:([^:]+):(.*)$/.exec(line))) kv[m[1]!] = m[2]!;
  }
  return { json, kv };
}

/** The script's output for people: everything but the machine-readable lines. */
export function humanOutput(r: BootResult): string {
  return r.output.split("\n").filter((l) => !/^(JSON|KV):/.test(l)).join("\n");
}

export function timing(r: BootResult): string {
  const s = (ms: number | null) => (ms === null ? "?" : `${(ms / 1000).toFixed(0)} s`);
  return `login after ${s(r.readyMs)} (guest uptime ${r.readyUptime ?? "?"} s), whole run ${s(r.wallMs)}`;
}
