// Issue 10 on a booted guest: images from a real registry (Debian's docker-registry on the host's
// 127.0.0.1), GPG-signed by skopeo, checked by the guest's own policy.json. The guest's only way
// out is two guestfwd rules (the registry, and the signatures' lookaside). Boot 1, on the installed
// v1: an unsigned image is refused with the store unchanged; `particle switch` to the signed
// image. Then v2 is pushed. Boot 2: particle-upgrade.timer (shortened) stages v2 with no command
// typed. Boot 3: v2 runs; `particle rollback` makes v1 the default (that a rolled-back deployment
// boots is cycle.test.ts's and the demo's: a fourth boot here would cost ~80 s and show nothing of
// the registry). The boots build on each other, so the tests run in order on one disk.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestNetArgs, GUEST_NET, serveRepo } from "./lib/apt-repo.ts";
import { parse, PRELUDE, timing, type Parsed } from "./lib/cycle.ts";
import { runDisk } from "./lib/ovmf.ts";
import { sh } from "./lib/guest.ts";
import { guestRef, prepareRegistryGuest, push, REPO, SIG_IP, UNSIGNED_REPO, V2_MARKER, V2_MARKER_TEXT, type RegistryGuestInputs } from "./lib/registry-guest.ts";
import { startRegistry, type TestRegistry } from "../host/lib/registry.ts";

const BOOT_TIMEOUT = 900_000;
const TEST_TIMEOUT = 960_000;
const SETUP_TIMEOUT = 1_800_000;
/** How long boot 2 waits for the timer's run to finish. */
const TIMER_WAIT_S = 700;

const STATUS = `particle status --json | j status
kv deployments "$(ls /sysroot/particle/deploy | tr '\\n' ' ')"
kv marker "$(cat /${V2_MARKER} 2>/dev/null || echo absent)"
`;

/** Boot 1: the unsigned image is refused; the signed one is switched to. */
const SWITCH = `${PRELUDE}
${GUEST_NET}
${STATUS}
set +e
particle switch docker://${guestRef(UNSIGNED_REPO)} >/run/unsigned.out 2>&1
kv unsigned-exit "$?"
set -e
kv unsigned-error "$(tr '\\n' ' ' </run/unsigned.out)"
kv deployments-after-refusal "$(ls /sysroot/particle/deploy | tr '\\n' ' ')"
t0=$(now)
particle switch docker://${guestRef(REPO)} --json >/run/switch.json 2>/run/switch.err || { cat /run/switch.err; exit 1; }
kv switch-seconds "$(awk "BEGIN{print $(now) - $t0}")"
tail -n 3 /run/switch.err
tail -n 1 /run/switch.json | j switch
`;

/** Boot 2: nobody types anything; the timer, made to fire now, stages what the registry has. */
const TIMER = `${PRELUDE}
${GUEST_NET}
${STATUS}
mkdir -p /run/systemd/system/particle-upgrade.timer.d
printf '[Timer]\\nOnBootSec=\\nOnActiveSec=2s\\nRandomizedDelaySec=0\\n' >/run/systemd/system/particle-upgrade.timer.d/50-test.conf
systemctl daemon-reload
t0=$(now)
systemctl restart particle-upgrade.timer
for i in $(seq 1 ${TIMER_WAIT_S}); do
  [ "$(systemctl show -p ExecMainExitTimestampMonotonic --value particle-upgrade.service)" != 0 ] && break
  sleep 1
done
kv timer-to-staged-seconds "$(awk "BEGIN{print $(now) - $t0}")"
kv upgrade-result "$(systemctl show -p Result --value particle-upgrade.service)"
journalctl -u particle-upgrade.service --no-pager -o cat | tail -n 8
particle status --json | j after
`;

/** Boot 3: v2 runs; roll back. */
const ON_V2 = `${PRELUDE}
${STATUS}
particle rollback --json >/run/rollback.json
tail -n 1 /run/rollback.json | j rollback
particle status --json | j after
`;

describe("images from a registry on a booted guest: signed, updated by the timer (issue 10)", () => {
  let c: RegistryGuestInputs;
  let registry: TestRegistry;
  let sigs: Awaited<ReturnType<typeof serveRepo>>;
  let disk: string;
  let net: string[];
  const work = mkdtempSync(join(tmpdir(), "particle-registry-"));
  const ids: Record<string, string> = {};
  let pushedAt = 0;

  const boot = async (name: string, script: string): Promise<Parsed> => {
    const r = await runDisk({ name, disk, script, extraArgs: net, timeoutMs: BOOT_TIMEOUT });
    console.log(`${name}: ${timing(r)}`);
    return parse(r);
  };

  beforeAll(async () => {
    c = await prepareRegistryGuest((m) => console.log(m));
    registry = await startRegistry(join(work, "registry"), { quiet: true });
    // skopeo writes signatures to the lookaside directory the guest reads over HTTP.
    const sigDir = join(work, "sigs");
    mkdirSync(sigDir);
    mkdirSync(join(registry.home, ".config/containers/registries.d"), { recursive: true });
    writeFileSync(join(registry.home, ".config/containers/registries.d/particle-test.yaml"), `docker:\n  ${registry.host}:\n    lookaside-staging: file://${sigDir}\n`);
    push(c, "v1", registry.host, registry.home, REPO, true);
    push(c, "v1", registry.host, registry.home, UNSIGNED_REPO, false);
    sigs = await serveRepo(sigDir);
    disk = join(work, "disk.img");
    sh("cp", ["--sparse=always", c.installed, disk]);
    net = guestNetArgs(work, Number(registry.host.split(":")[1]), { [SIG_IP]: sigs.port });
  }, SETUP_TIMEOUT);
  afterAll(() => {
    registry?.stop();
    sigs?.server.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("refuses an unsigned image with the store unchanged; switches to the signed one", async () => {
    const p = await boot("registry-1-switch", SWITCH);
    ids.installed = p.json.status?.status.booted.id;
    ids.switched = p.json.switch?.id;
    expect(p.kv["unsigned-exit"]).not.toBe("0");
    expect(p.kv["unsigned-error"]).toContain(guestRef(UNSIGNED_REPO));
    expect(p.kv["unsigned-error"]).toMatch(/signature/i);
    expect(p.kv["deployments-after-refusal"]).toBe(p.kv.deployments);
    expect(p.json.switch?.imageDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(ids.switched).not.toBe(ids.installed);
    console.log(`switch to the signed v1 in the guest: ${p.kv["switch-seconds"]} s; signature requests: ${sigs.requests.length}`);
    expect(sigs.requests.some((r) => r.startsWith(`GET /${REPO}@sha256=`))).toBe(true);
  }, TEST_TIMEOUT);

  it("v2 is pushed; the timer stages it with no command typed", async () => {
    push(c, "v2", registry.host, registry.home, REPO, true);
    pushedAt = Date.now();
    const p = await boot("registry-2-timer", TIMER);
    expect(p.json.status?.status.booted.id).toBe(ids.switched);
    expect(p.kv.marker).toBe("absent");
    expect(p.kv["upgrade-result"]).toBe("success");
    const after = p.json.after;
    ids.staged = after?.spec.defaultDeployment;
    expect(ids.staged).not.toBe(ids.switched);
    console.log(`push → staged by the timer: ${((Date.now() - pushedAt) / 1000).toFixed(0)} s of wall time including the boot; timer start → staged in the guest: ${p.kv["timer-to-staged-seconds"]} s`);
  }, TEST_TIMEOUT);

  it("v2 boots; particle rollback makes v1 the default again", async () => {
    const p = await boot("registry-3-v2", ON_V2);
    expect(p.json.status?.status.booted.id).toBe(ids.staged);
    expect(p.kv.marker).toBe(V2_MARKER_TEXT.trim());
    expect(p.json.rollback).toMatchObject({ target: ids.switched, from: ids.staged });
    expect(p.json.after?.spec.defaultDeployment).toBe(ids.switched);
  }, TEST_TIMEOUT);
});
