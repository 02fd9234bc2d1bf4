// Effects on the target: inspecting it, attaching a disk image to a loop device, partitioning and
// making filesystems. Each failure says which device and which step.
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from "node:fs";
import { basename } from "node:path";
import { run } from "../system/exec.ts";
import { ESP_LABEL, ROOT_LABEL, mountsUsing, sfdiskScript, swapsUsing } from "./disk.ts";

export interface Target {
  /** As given on the command line. */
  path: string;
  kind: "file" | "block";
  /** Current size in bytes (0 for a file that does not exist yet). */
  size: number;
}

export function inspectTarget(path: string): Target {
  if (!existsSync(path)) return { path, kind: "file", size: 0 };
  const st = statSync(path);
  if (st.isBlockDevice()) return { path, kind: "block", size: blockSize(path) };
  if (st.isFile()) return { path, kind: "file", size: st.size };
  throw new Error(`${path}: neither a disk image file nor a block device`);
}

function blockSize(dev: string): number {
  const name = basename(realpathSync(dev));
  return Number(readFileSync(`/sys/class/block/${name}/size`, "utf8").trim()) * 512;
}

/** A block device and its partitions as "major:minor" and /dev paths. */
function deviceFamily(dev: string): { numbers: Set<string>; paths: Set<string> } {
  const name = basename(realpathSync(dev));
  const numbers = new Set<string>();
  const paths = new Set<string>();
  const add = (n: string) => {
    numbers.add(readFileSync(`/sys/class/block/${n}/dev`, "utf8").trim());
    paths.add(`/dev/${n}`);
  };
  add(name);
  for (const sub of readdirSync(`/sys/class/block/${name}`)) if (sub.startsWith(name) && existsSync(`/sys/class/block/${sub}/partition`)) add(sub);
  return { numbers, paths };
}

/** Refuses a target that is mounted, used as swap or (for a file) attached to a loop device. */
export async function assertNotInUse(t: Target): Promise<void> {
  if (t.kind === "file") {
    if (t.size === 0) return;
    const loops = (await run("losetup", ["--list", "--noheadings", "--output", "NAME", "--associated", realpathSync(t.path)])).trim();
    if (loops) throw new Error(`${t.path} is in use: attached to ${loops.split("\n").join(", ")} (detach with losetup -d, after unmounting)`);
    return;
  }
  const fam = deviceFamily(t.path);
  const mounted = mountsUsing(readFileSync("/proc/self/mountinfo", "utf8"), fam.numbers);
  if (mounted.length) throw new Error(`${t.path} is mounted (on ${mounted.join(", ")}); unmount it first, install erases the whole disk`);
  const swaps = swapsUsing(readFileSync("/proc/swaps", "utf8"), fam.paths);
  if (swaps.length) throw new Error(`${t.path} is in use as swap (${swaps.join(", ")})`);
}

export interface Attached {
  disk: string;
  esp: string;
  root: string;
  detach(): Promise<void>;
}

/** Partition device names: /dev/sda1, but /dev/loop0p1 and /dev/nvme0n1p1 after a digit. */
export const partitionPath = (disk: string, n: number): string => `${disk}${/\d$/.test(disk) ? "p" : ""}${n}`;

async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (existsSync(path)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path} did not appear after partitioning (is /dev a devtmpfs?)`);
}

/** Partitions the disk (a loop device for an image file) and returns its partition devices. */
export async function partition(t: Target, onAttach: (loop: string) => void = () => {}, varBytes = 0): Promise<Attached> {
  let disk = t.path;
  let detach = async () => {};
  if (t.kind === "file") {
    disk = (await run("losetup", ["--find", "--show", "--partscan", t.path])).trim();
    detach = async () => { await run("losetup", ["-d", disk]); };
    onAttach(disk);
  }
  try {
    await run("sfdisk", ["--quiet", "--wipe", "always", "--wipe-partitions", "always", disk], { input: sfdiskScript(varBytes, t.size) });
    // Re-read the table: a loop device attached before partitioning shows no partitions otherwise.
    if (t.kind === "file") await run("partx", ["--update", disk]).catch(() => run("blockdev", ["--rereadpt", disk]));
    else await run("blockdev", ["--rereadpt", disk]).catch(() => run("partx", ["--update", disk]));
    const esp = partitionPath(disk, 1);
    const root = partitionPath(disk, 2);
    await waitFor(esp);
    await waitFor(root);
    if (varBytes > 0) {
      const varDev = partitionPath(disk, 3);
      await waitFor(varDev);
      // particle-boot formats the partition only if it starts blank (boot/src/var-luks-plan.ts): a
      // block device may hold old data beyond what sfdisk's signature wipe clears.
      await run("dd", ["if=/dev/zero", `of=${varDev}`, "bs=1M", "count=1", "conv=fsync", "status=none"]);
    }
    return { disk, esp, root, detach };
  } catch (e) {
    await detach().catch(() => {});
    throw new Error(`partitioning ${t.path}: ${(e as Error).message}`);
  }
}

export async function makeFilesystems(a: Attached): Promise<{ espUuid: string; rootUuid: string }> {
  await run("mkfs.vfat", ["-F", "32", "-n", ESP_LABEL, a.esp]);
  // verity: fs-verity on images and objects; the root holds only particle/, so no journal tuning.
  await run("mkfs.ext4", ["-q", "-F", "-O", "verity", "-L", ROOT_LABEL, a.root]);
  const uuid = async (dev: string) => (await run("blkid", ["-p", "-s", "UUID", "-o", "value", dev])).trim();
  const espUuid = await uuid(a.esp);
  const rootUuid = await uuid(a.root);
  if (!espUuid || !rootUuid) throw new Error(`could not read filesystem UUIDs of ${a.esp} and ${a.root}`);
  return { espUuid, rootUuid };
}
