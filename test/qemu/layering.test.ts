// Issue 14 on a booted guest: `particle layer install` of a plain package, a DKMS package and skopeo
// from a local apt repository (the guest's only way out is one guestfwd rule to the host's
// 127.0.0.1), reboot; the packages are listed by dpkg and apt and the DKMS module, built for the
// deployment's kernel, loads. `particle layer remove` of the DKMS package, reboot, it is gone.
// `particle upgrade` to a new image (an OCI layout on /dev/vdc) keeps the layered packages.
// Four boots; they build on each other, so the tests run in order on one disk.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestNetArgs, GUEST_NET, serveRepo } from "./lib/apt-repo.ts";
import { parse, PRELUDE, timing, type Parsed } from "./lib/cycle.ts";
import { DKMS_MODULE, LAYERED, OCI_DIR, OCI_REF, prepareLayering, V2_MARKER, V2_MARKER_TEXT, type LayeringInputs } from "./lib/layering.ts";
import { runDisk } from "./lib/ovmf.ts";
import { sh } from "./lib/guest.ts";

// Each layer run digests the whole tree and the new deployment's initramfs is built by dracut,
// all under TCG. Measured at load ~15 on 2 cores: boot 1 reached its agent after 322 s, apt + DKMS
// took ~12 min, staging 468 s, and dracut was still running when a 40-minute limit ended the boot.
const BOOT_TIMEOUT = 4_200_000;
const TEST_TIMEOUT = 4_300_000;
const SETUP_TIMEOUT = 1_800_000;

/** What dpkg, apt and the kernel say about the layered packages on the booted deployment. */
const PACKAGE_STATE = `
kv booted-id "$(sed -n 's/.*"id": *"\\([^"]*\\)".*/\\1/p' /run/particle-booted)"
kv dpkg-mount "$(findmnt -n -o FSTYPE,OPTIONS --target /var/lib/dpkg | cut -d, -f1)"
kv dpkg-l "$(dpkg -l ${LAYERED.join(" ")} 2>/dev/null | awk '/^ii/{print $2}' | tr '\\n' ' ')"
kv dpkg-S "$(dpkg -S /usr/bin/hello 2>&1 || true)"
kv apt-list "$(apt list --installed 2>/dev/null | grep -E '^(${LAYERED.join("|")})/' | cut -d/ -f1 | tr '\\n' ' ')"
kv dpkg-total "$(dpkg-query -W | wc -l)"
kv kernel "$(uname -r)"
if modprobe ${DKMS_MODULE} 2>/run/modprobe.err; then kv modprobe ok; else kv modprobe "failed: $(tr '\\n' ' ' </run/modprobe.err)"; fi
kv module-loaded "$(grep -c '^${DKMS_MODULE} ' /proc/modules || true)"
kv module-file "$(modinfo -n ${DKMS_MODULE} 2>/dev/null || true)"
`;

const LAYER_JSON = (what: string, args: string) => `t0=$(now)
particle layer ${args} --json >/run/layer.json
kv ${what}-seconds "$(awk "BEGIN{print $(now) - $t0}")"
tail -n 1 /run/layer.json | j ${what}
`;

/** Boot 1, on the installed v1 image: nothing layered, apt cannot install; layer three packages. */
const INSTALL = `${PRELUDE}
${GUEST_NET}
${PACKAGE_STATE}
set +e
# With lists (the persistent /var is writable) apt resolves the package and then needs dpkg's lock.
apt-get -q update >/dev/null 2>&1
apt-get install -y hello >/run/apt.out 2>&1
kv apt-get-exit "$?"
set -e
kv apt-get-error "$(grep -m1 '^E:' /run/apt.out)"
${LAYER_JSON("layer", `install ${LAYERED.join(" ")}`)}
particle status --json | j status
`;

/** Boot 2, on the layered deployment: everything listed, the module loads; remove the DKMS package. */
const ON_LAYERED = `${PRELUDE}
${GUEST_NET}
${PACKAGE_STATE}
${LAYER_JSON("remove", "remove acpi-call-dkms")}
`;

/** Boot 3, without the DKMS package: it is gone; upgrade to image v2 from /dev/vdc. */
const ON_REMOVED = `${PRELUDE}
${GUEST_NET}
${PACKAGE_STATE}
mkdir -p ${OCI_DIR} && mount -o ro /dev/vdc ${OCI_DIR}
t0=$(now)
particle upgrade --json >/run/upgrade.json
kv upgrade-seconds "$(awk "BEGIN{print $(now) - $t0}")"
tail -n 1 /run/upgrade.json | j upgrade
umount ${OCI_DIR}
`;

/** Boot 4, on the upgraded deployment: the new image's file and the layered packages. */
const ON_UPGRADED = `${PRELUDE}
${PACKAGE_STATE}
kv v2-marker "$(cat /${V2_MARKER} 2>/dev/null || echo absent)"
particle status --json | j status
`;

describe("package layering on a booted guest (issue 14)", () => {
  let c: LayeringInputs;
  let disk: string;
  let repo: Awaited<ReturnType<typeof serveRepo>>;
  let net: string[];
  const work = mkdtempSync(join(tmpdir(), "particle-layering-"));
  const ids: Record<string, string> = {};

  const boot = async (name: string, script: string, lateDisks: string[] = []) => {
    const r = await runDisk({ name, disk, script, lateDisks, extraArgs: net, timeoutMs: BOOT_TIMEOUT });
    console.log(`${name}: ${timing(r)}`);
    return parse(r);
  };

  beforeAll(async () => {
    c = await prepareLayering((m) => console.log(m));
    disk = join(work, "disk.img");
    sh("cp", ["--sparse=always", c.installed, disk]);
    repo = await serveRepo(c.repo);
    net = guestNetArgs(work, repo.port);
  }, SETUP_TIMEOUT);
  afterAll(() => {
    repo?.server.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("layers a plain package, a DKMS package and skopeo on the booted system; apt itself is refused", async () => {
    const p = await boot("layering-1-install", INSTALL);
    // Recorded first: the later boots check against them even when an expectation here fails.
    ids.base = p.json.status?.status.booted.id;
    ids.layered = p.json.layer?.id;
    expect(p.kv["repo-reachable"]).toBe("yes");
    // The booted deployment's own database, read-only, over the shared /var/lib/dpkg.
    expect(p.kv["dpkg-mount"]).toBe("overlay ro");
    expect(Number(p.kv["dpkg-total"])).toBeGreaterThan(100);
    expect(p.kv["dpkg-l"]).toBe("");
    expect(p.kv["modprobe"]).toMatch(/^failed/);
    expect(p.kv["apt-get-exit"]).toBe("100");
    expect(p.kv["apt-get-error"]).toMatch(/\/var\/lib\/dpkg\/lock-frontend .*Read-only file system/);
    const l = p.json.layer;
    expect(l).toMatchObject({ layered: LAYERED, added: LAYERED, mode: "rebase", headers: `linux-headers-${c.g.kver}`, kernel: c.g.kver, modulesChanged: [c.g.kver] });
    expect(l.dkms).toEqual([expect.stringMatching(new RegExp(`^acpi-call/[^,]+, ${c.g.kver.replaceAll("+", "\\+")}, x86_64: installed`))]);
    expect(l.entry).toBeTruthy();
    expect(p.json.status.spec.defaultDeployment).toBe(l.id);
    console.log(`layer install ${LAYERED.join(" ")} in the guest: ${p.kv["layer-seconds"]} s (apt + DKMS ${l.seconds.apt} s, staging ${l.seconds.stage} s); repository requests: ${repo.requests.length}`);
  }, TEST_TIMEOUT);

  it("after the reboot dpkg, apt and dpkg -S list them, and the DKMS module loads", async () => {
    const p = await boot("layering-2-layered", ON_LAYERED);
    ids.removed = p.json.remove?.id;
    expect(p.kv["booted-id"]).toBe(ids.layered);
    expect(p.kv["dpkg-l"]!.trim()).toBe(LAYERED.join(" "));
    expect(p.kv["apt-list"]!.trim()).toBe(LAYERED.join(" "));
    expect(p.kv["dpkg-S"]).toBe("hello: /usr/bin/hello");
    expect(p.kv.kernel).toBe(c.g.kver);
    expect(p.kv.modprobe).toBe("ok");
    expect(p.kv["module-loaded"]).toBe("1");
    // Built for the deployment's kernel (the running one here), found by modules.dep.
    expect(p.kv["module-file"]).toMatch(new RegExp(`/modules/${c.g.kver.replaceAll("+", "\\+")}/updates/dkms/${DKMS_MODULE}\\.ko(\\.xz|\\.zst)?$`));
    const r = p.json.remove;
    expect(r).toMatchObject({ layered: ["hello", "skopeo"], removed: ["acpi-call-dkms"], mode: "rebase", lower: ids.base });
    console.log(`layer remove acpi-call-dkms in the guest: ${p.kv["remove-seconds"]} s (apt ${r.seconds.apt} s, staging ${r.seconds.stage} s)`);
  }, TEST_TIMEOUT);

  it("after the next reboot the DKMS package and its module are gone; upgrade to v2 keeps the layered packages", async () => {
    const p = await boot("layering-3-removed", ON_REMOVED, [c.v2]);
    ids.upgraded = p.json.upgrade?.id;
    expect(p.kv["booted-id"]).toBe(ids.removed);
    expect(p.kv["dpkg-l"]!.trim()).toBe("hello skopeo");
    expect(p.kv["apt-list"]!.trim()).toBe("hello skopeo");
    expect(p.kv.modprobe).toMatch(/^failed/);
    expect(p.kv["module-file"]).toBe("");
    const u = p.json.upgrade;
    expect(u.layered).toEqual(["hello", "skopeo"]);
    expect(u.base.id).not.toBe(ids.base);
    expect(u.entry).toBeTruthy();
    console.log(`upgrade (new image + re-applied packages) in the guest: ${p.kv["upgrade-seconds"]} s`);
  }, TEST_TIMEOUT);

  it("boots the upgraded deployment: the new image's file, the same layered packages", async () => {
    const p = await boot("layering-4-upgraded", ON_UPGRADED);
    expect(p.kv["booted-id"]).toBe(ids.upgraded);
    expect(p.kv["v2-marker"]).toBe(V2_MARKER_TEXT.trim());
    expect(p.kv["dpkg-l"]!.trim()).toBe("hello skopeo");
    expect(p.kv["dpkg-S"]).toBe("hello: /usr/bin/hello");
    const booted = p.json.status.status.booted;
    expect(booted).toMatchObject({ id: ids.upgraded, layered: ["hello", "skopeo"] });
    expect(booted.image).toMatchObject({ reference: OCI_REF, sourceDigest: c.v2Digest });
  }, TEST_TIMEOUT);
});
