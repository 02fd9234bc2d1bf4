// The download workload of the delivery and fleet sections (issue 10, sections 5 and 6), built once
// and cached in $PARTICLE_CACHE/bench/delivery-<key>/:
//
// - v1/: the QEMU tier's Debian trixie base tree (test/qemu/lib/guest.ts, mmdebstrap, cached), with
//   the kernel at bootc's place, plus filler packages copied from this host with their dpkg file
//   lists and status stanzas (real packages, so `particle image chunk` sees real package
//   boundaries): ≥ 500 MB in all.
// - v2/: `cp -al v1`, then a security update of one mid-sized package (CHANGED): each of its
//   regular files is replaced by a new file (new inode, so v1 is untouched) holding the old bytes
//   plus a suffix, its md5sums and the dpkg status are rewritten. That is what an upgraded .deb does.
// - chunked/: `particle image chunk` of v1 and v2 (tags v1, v2).
// - baseline/: what a Containerfile build gives, `FROM` a base + `RUN apt-get install` the filler:
//   layer 1 the tree without the filler, layer 2 the filler (GNU tar, gzip -6). An update of the
//   base rebuilds layer 1; layer 2 is the same blob in v1 and v2.
// - appended/: the other way a Containerfile can carry the update, informational: v1 as one layer,
//   v2 = the same layer + a layer with the changed files (`RUN apt-get upgrade` on an unchanged
//   base). Cheap to fetch, but the old files stay in the image underneath, and the next rebuild of
//   the base fetches everything again.
// - changed.gz: the changed files of v2 as one tar, gzip -6: "the compressed size of the changed files".
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { guestBase } from "../qemu/lib/guest.ts";
import { blobFrom, writeManifest, type LayerBlob } from "./oci-blobs.ts";
import { BenchError, benchCacheDir, log, sh, type BenchContext } from "./lib.ts";

/** Host packages added as filler (those installed here; the build fails below 500 MB). */
export const FILLER = ["libllvm14", "gcc-12", "postgresql-15", "git", "vim-runtime", "libicu72", "libclang-cpp14", "cpp-12"];
/** The package the update changes: OpenSSL's library, the classic security update (~8 MB). */
export const CHANGED = "libssl3t64";
const MIN_BYTES = 500e6;
/** File times of the images (SOURCE_DATE_EPOCH). */
export const EPOCH = 1_767_225_600;
const RECIPE = `delivery-v1: ${FILLER.join(",")} changed=${CHANGED} epoch=${EPOCH} chunk(default max layers) baseline=2 layers gzip -6 appended=1+1`;

export interface DeliveryWorkload {
  dir: string;
  /** OCI layouts, each with tags v1 and v2. */
  chunked: string;
  baseline: string;
  appended: string;
  /** Apparent size of v1's files. */
  treeBytes: number;
  changedFiles: number;
  changedBytes: number;
  /** tar of the changed files, gzip -6. */
  changedCompressed: number;
  /** Layer name (`particle image chunk: pkg:…`) of each chunked blob digest, v1 and v2. */
  layerNames: Record<string, string>;
}

const bash = (script: string) => sh(["bash", "-euo", "pipefail", "-c", script]);
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** dpkg's name for a host package's files: `<pkg>.list` or `<pkg>:<arch>.list`. */
function infoName(pkg: string): string | undefined {
  for (const n of [pkg, `${pkg}:amd64`]) if (existsSync(`/var/lib/dpkg/info/${n}.list`)) return n;
  return undefined;
}

async function addFiller(tree: string, pkgs: string[]): Promise<void> {
  for (const n of pkgs) {
    // Directory entries of the list are kept (owner, mode); --keep-directory-symlink keeps the
    // tree's usrmerge links (/lib → usr/lib); --skip-old-files never replaces the base's own files.
    await bash(`grep -v '^/\\.$' /var/lib/dpkg/info/${q(n)}.list | sed 's|^/||' | LC_ALL=C sort > ${q(tree)}/.filler-list
      tar -C / --create --no-recursion --numeric-owner --xattrs --xattrs-include='*' -T ${q(tree)}/.filler-list 2>/dev/null |
        tar -C ${q(tree)} --extract --numeric-owner --xattrs --xattrs-include='*' --keep-directory-symlink --skip-old-files
      rm ${q(tree)}/.filler-list
      for f in /var/lib/dpkg/info/${q(n)}.*; do cp -a "$f" ${q(tree)}/var/lib/dpkg/info/; done
      { echo; dpkg-query -s ${q(n)}; } >> ${q(tree)}/var/lib/dpkg/status`);
  }
}

/** The update: CHANGED's regular files replaced by new files; dpkg's records of it rewritten. Returns the changed paths (relative). */
async function changePackage(v2: string): Promise<string[]> {
  const info = readdirSync(join(v2, "var/lib/dpkg/info")).find((f) => f === `${CHANGED}.list` || f === `${CHANGED}:amd64.list`);
  if (!info) throw new BenchError(`the base tree has no package ${CHANGED}`);
  const name = info.slice(0, -".list".length);
  const out = await bash(`cd ${q(v2)}
    changed=()
    while read -r p; do
      f=\${p#/}
      [ -f "$f" ] && [ ! -L "$f" ] || continue
      cp -a "$f" "$f.new"; printf 'particle-bench %s 2\\n' "$f" >> "$f.new"; touch -r "$f" -d '+1 sec' "$f.new" 2>/dev/null || true
      mv "$f.new" "$f"; changed+=("$f")
    done < var/lib/dpkg/info/${q(name)}.list
    md5sum "\${changed[@]}" > var/lib/dpkg/info/${q(name)}.md5sums.new
    mv var/lib/dpkg/info/${q(name)}.md5sums.new var/lib/dpkg/info/${q(name)}.md5sums
    # sed -i writes a new file and renames it: v1's status (the same inode until now) stays as it was.
    sed -i '/^Package: ${CHANGED}$/,/^$/ s/^Version: \\(.*\\)$/Version: \\1+bench2/' var/lib/dpkg/status
    printf '%s\\n' "\${changed[@]}" var/lib/dpkg/info/${q(name)}.md5sums var/lib/dpkg/status`);
  return out.trim().split("\n");
}

const tarOf = (tree: string, list: string) =>
  `tar -C ${q(tree)} --create --format=pax --no-recursion --numeric-owner --xattrs --xattrs-include='*' --mtime=@${EPOCH} --clamp-mtime -T ${q(list)}`;

export async function deliveryWorkload(ctx: BenchContext): Promise<DeliveryWorkload> {
  const fillers = FILLER.map(infoName).filter((n): n is string => n !== undefined);
  const base = await guestBase();
  const inputs = await sh(["sh", "-c", `cd / && for p in ${fillers.map(q).join(" ")}; do cat /var/lib/dpkg/info/$p.md5sums 2>/dev/null; done | sha256sum; ls ${q(base)}/usr/lib/modules`]);
  // The particle binary is part of the key: a change to `particle image chunk` gives other layers.
  const key = createHash("sha256").update(RECIPE).update(base).update(inputs).update(await sh(["sha256sum", ctx.particle])).digest("hex").slice(0, 16);
  const dir = join(benchCacheDir(), `delivery-${key}`);
  const meta = join(dir, "workload.json");
  if (existsSync(meta) && !ctx.rebuild) return JSON.parse(readFileSync(meta, "utf8"));
  for (const d of existsSync(benchCacheDir()) ? readdirSync(benchCacheDir()) : []) if (d.startsWith("delivery-")) rmSync(join(benchCacheDir(), d), { recursive: true, force: true });
  log(`building the delivery workload in ${dir} (once; several minutes)`);
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const v1 = join(tmp, "v1"), v2 = join(tmp, "v2");
  await bash(`cp -a ${q(base)} ${q(v1)}; find ${q(v1)}/dev -mindepth 1 -delete
    for k in ${q(v1)}/boot/vmlinuz-*; do kver=\${k##*/vmlinuz-}; ln -f "$k" ${q(v1)}/usr/lib/modules/$kver/vmlinuz; done
    mkdir -p ${q(v1)}/sysroot ${q(v1)}/efi
    cd ${q(v1)} && find . -mindepth 1 | sed 's|^\\./||' | LC_ALL=C sort > ../base.list`);
  await addFiller(v1, fillers);
  const treeBytes = Number((await sh(["du", "-sb", "--apparent-size", v1])).split("\t")[0]);
  if (treeBytes < MIN_BYTES) throw new BenchError(`delivery workload: ${treeBytes} bytes < 500 MB (filler packages installed here: ${fillers.join(", ") || "none"})`);
  await bash(`cd ${q(v1)} && find . -mindepth 1 | sed 's|^\\./||' | LC_ALL=C sort > ../all.list; cd .. && LC_ALL=C comm -13 base.list all.list > filler.list; cp -al v1 v2`);
  const changed = await changePackage(v2);
  writeFileSync(join(tmp, "changed.list"), changed.join("\n") + "\n");
  await bash(`cd ${q(tmp)}; ${tarOf(v2, join(tmp, "changed.list"))} | gzip -n -6 > changed.gz; LC_ALL=C comm -23 all.list filler.list > base-layer.list`);
  const changedBytes = Number((await bash(`cd ${q(v2)} && du -cb --apparent-size $(cat ../changed.list) | tail -1 | cut -f1`)).trim());

  const chunked = join(tmp, "chunked"), baseline = join(tmp, "baseline");
  for (const v of ["v1", "v2"]) {
    await sh([ctx.particle, "image", "chunk", join(tmp, v), join(tmp, `chunked-${v}`), "--tag", v, "--epoch", String(EPOCH)]);
  }
  // One layout holding both tags (skopeo pushes either): v2's blobs next to v1's.
  await bash(`cd ${q(tmp)}; mv chunked-v1 chunked; cp -n chunked-v2/blobs/sha256/* chunked/blobs/sha256/
    python3 -c "import json;a=json.load(open('chunked/index.json'));b=json.load(open('chunked-v2/index.json'));a['manifests']+=b['manifests'];json.dump(a,open('chunked/index.json','w'))"
    rm -rf chunked-v2`);
  const layerNames: Record<string, string> = {};
  const index = JSON.parse(readFileSync(join(chunked, "index.json"), "utf8"));
  for (const m of index.manifests) {
    const man = JSON.parse(readFileSync(join(chunked, "blobs/sha256", m.digest.slice(7)), "utf8"));
    const cfg = JSON.parse(readFileSync(join(chunked, "blobs/sha256", man.config.digest.slice(7)), "utf8"));
    man.layers.forEach((l: { digest: string }, i: number) => { layerNames[l.digest] = String(cfg.history[i].created_by).replace("particle image chunk: ", ""); });
  }

  mkdirSync(join(baseline, "blobs/sha256"), { recursive: true });
  writeFileSync(join(baseline, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const filler = await blobFrom(baseline, tarOf(v1, join(tmp, "filler.list")), "gzip", 6);
  for (const v of ["v1", "v2"]) {
    const layers: LayerBlob[] = [await blobFrom(baseline, tarOf(join(tmp, v), join(tmp, "base-layer.list")), "gzip", 6), filler];
    writeManifest(baseline, v, layers, { "containers.bootc": "1" });
    layerNames[layers[0]!.digest] = `baseline base layer ${v}`;
  }
  layerNames[filler.digest] = "baseline filler layer";

  const appended = join(tmp, "appended");
  mkdirSync(join(appended, "blobs/sha256"), { recursive: true });
  writeFileSync(join(appended, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const whole = await blobFrom(appended, tarOf(v1, join(tmp, "all.list")), "gzip", 6);
  const change = await blobFrom(appended, tarOf(v2, join(tmp, "changed.list")), "gzip", 6);
  writeManifest(appended, "v1", [whole], { "containers.bootc": "1" });
  writeManifest(appended, "v2", [whole, change], { "containers.bootc": "1" });
  layerNames[whole.digest] = "appended: v1 tree";
  layerNames[change.digest] = "appended: change layer";

  const w: DeliveryWorkload = {
    dir, chunked: join(dir, "chunked"), baseline: join(dir, "baseline"), appended: join(dir, "appended"), treeBytes,
    changedFiles: changed.length, changedBytes, changedCompressed: statSync(join(tmp, "changed.gz")).size, layerNames,
  };
  writeFileSync(join(tmp, "workload.json"), JSON.stringify(w));
  renameSync(tmp, dir);
  return w;
}
