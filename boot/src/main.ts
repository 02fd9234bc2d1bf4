// particle-boot: runs in the initramfs as particle-root.service, after sysroot.mount has mounted
// the physical root at /sysroot and before initrd-root-fs.target. It verifies the deployment
// named on the kernel command line, mounts it, and leaves /sysroot holding the deployment's root
// with the physical root at /sysroot/sysroot, ready for systemd's switch-root. On any failure it
// says why on stderr and /dev/kmsg and exits non-zero; the unit's OnFailure= then goes to
// emergency.target, so boot counting can fall back to the previous entry.
// timing.ts first: its first mark is the moment before the other modules are evaluated.
import { mark, timingLine } from "./timing.ts";
import { readFileSync, writeSync } from "node:fs";
import { parseOptions, USAGE } from "./args.ts";
import { parseCmdline } from "./cmdline.ts";
import { Log } from "./log.ts";
import {
  chooseOverlayroot,
  dropWorkspace,
  ensureWritableSysroot,
  existingDir,
  findDeploymentByImage,
  loadDeployment,
  makeWorkspace,
  mountReadOnlyRoot,
  mountWritable,
  mountDpkgDatabase,
  moveIntoPlace,
  sealingMayWrite,
  withWritableSysroot,
  writableFor,
  writeBootedMarker,
  waitForDevice,
  DEVICE_TIMEOUT_S,
} from "./steps.ts";
import { verifyDeployment } from "../../runtime/src/mounts/index.ts";
import { writeEspRuntimeMount } from "./esp-mount.ts";
import { openVarLuks } from "./var-luks.ts";

function boot(argv: string[], log: Log): void {
  mark("modules");
  const o = parseOptions(argv);
  if (o.help) {
    writeSync(1, USAGE + "\n");
    return;
  }
  const sysroot = existingDir(o.sysroot, "--sysroot");
  const target = existingDir(o.target, "--target");
  const runDir = existingDir(o.runDir, "--run-dir");
  const args = parseCmdline(o.cmdline ?? readFileSync("/proc/cmdline", "utf8"));
  mark("cmdline");
  const m = args.deploy === undefined ? findDeploymentByImage(sysroot, args.image) : loadDeployment(sysroot, args.deploy);
  mark("manifest");

  // Nothing is mounted before the image digest is checked and the objects are sealed.
  const verify = () => verifyDeployment({ sysroot, manifest: m, verity: args.verity, expectedDigest: args.image });
  const mayWrite = sealingMayWrite(sysroot, m, args);
  mark("seal-check");
  const v = mayWrite ? withWritableSysroot(sysroot, verify) : verify();
  mark("verify");
  for (const w of v.warnings) log.warn(w);
  const overlayVerity = m.format === "composefs" ? v.check.verity.overlay : "off";

  const ws = makeWorkspace(runDir);
  mark("workspace");
  let moved = false;
  try {
    const root = mountReadOnlyRoot(ws, sysroot, m, v.image, overlayVerity);
    mark("ro-root");
    const overlayroot = chooseOverlayroot(args, root, sysroot, m.id);
    let writable = writableFor(overlayroot, sysroot, m.id, args.etc);
    mark("overlayroot");
    if (writable.kind === "persistent") ensureWritableSysroot(sysroot);
    mark("rw-sysroot");
    let luks: { provisioned: boolean } | undefined;
    if (args.var === "luks") {
      if (writable.kind !== "persistent") throw new Error(`particle.var=luks: overlayroot=${overlayroot.mode} keeps no /var on disk; the two cannot be combined`);
      const v = openVarLuks(ws, (msg) => log.info(msg));
      writable = { ...writable, var: v.dir };
      luks = v;
    }
    if (overlayroot.mode === "device") waitForDevice(overlayroot.dev, overlayroot.timeout ?? DEVICE_TIMEOUT_S);
    const newRoot = mountWritable(ws, root, writable);
    mark("writable");
    const dpkg = mountDpkgDatabase(newRoot, writable);
    if (dpkg) log.warn(dpkg);
    mark("dpkg");
    moveIntoPlace(sysroot, target, newRoot);
    mark("move");
    moved = true;
    if (writable.kind === "persistent" && writable.etc === "transient") {
      const w = writeEspRuntimeMount(runDir, target);
      if (w) log.warn(w);
    }
    writeBootedMarker(runDir, {
      schema: 1,
      id: m.id,
      imageDigest: m.imageDigest,
      format: m.format,
      verity: v.check.verity.mode,
      overlayVerity,
      imageCheck: v.check.method,
      sealed: v.sealed?.sealed ?? 0,
      overlayroot: overlayroot.mode,
      ...(args.etc === "transient" ? { etc: "transient" as const } : {}),
      ...(luks ? { var: luks.provisioned ? ("luks-provisioned" as const) : ("luks" as const) } : {}),
      warnings: v.warnings,
    });
    mark("marker");
    log.info(`deployment ${m.id} (${m.format}, image ${m.imageDigest}, verity ${v.check.verity.mode}, overlayroot ${overlayroot.mode}) mounted on ${target}`);
  } finally {
    // After a failure before the move this also takes down the half-built root.
    try {
      dropWorkspace(ws);
    } catch (e) {
      if (moved) log.warn(`cleaning up ${ws}: ${(e as Error).message}`);
    }
    mark("cleanup");
  }
}

const log = new Log(!process.argv.includes("--no-kmsg"));
try {
  boot(process.argv.slice(2), log);
} catch (e) {
  log.error(`FAILED: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  log.debug(timingLine());
  log.close();
}
