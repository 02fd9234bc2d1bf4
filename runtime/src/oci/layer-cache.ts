// Unpacked layers are remembered: a layer's tree (names, attributes, object digests, whiteouts) is
// kept as JSON beside the layout cache, named by the layer's blob digest. Staging an image whose
// layers were staged before reads these instead of decompressing and hashing the blobs again. An
// entry is only used while every object it names is still in the store (cleanup may remove
// them); hardlinks into lower layers are stored by path and resolved against the layers below at
// load time, exactly as when streaming.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Inode } from "../tree/model.ts";
import { emptyDir, lookup, type Dir, type Node } from "./layers.ts";

// 2: PAX mtimes before 1970 are kept (version 1 entries hold them as 0).
const VERSION = 2;

type JInode = { k: Inode["kind"]; p: number; u: number; g: number; s: number; n: number; x?: [string, string][]; z?: number; d?: string; t?: string; ma?: number; mi?: number };
type JDir = { i?: number; o?: 1; c: [string, JNode][] };
type JNode = { w: 1 } | { d: JDir } | { l: number } | { x: string };

/** Pure: a layer tree → JSON text. Files must already carry their object digest. */
export function encodeLayer(root: Dir): string {
  const inodes: JInode[] = [];
  const ids = new Map<Inode, number>();
  const inode = (i: Inode): number => {
    let id = ids.get(i);
    if (id !== undefined) return id;
    id = inodes.length;
    ids.set(i, id);
    const j: JInode = { k: i.kind, p: i.perm, u: i.uid, g: i.gid, s: i.mtimeSec, n: i.mtimeNsec };
    if (i.xattrs.length) j.x = i.xattrs.map((x) => [x.name.toString("latin1"), x.value.toString("base64")]);
    if (i.kind === "file") {
      if (i.data?.kind !== "object") throw new Error("layer cache: a file without its object digest");
      j.z = i.size;
      j.d = i.data.digest;
    }
    if (i.target) j.t = i.target.toString("base64");
    if (i.rdevMajor !== undefined) { j.ma = i.rdevMajor; j.mi = i.rdevMinor; }
    inodes.push(j);
    return id;
  };
  const dir = (d: Dir): JDir => {
    const out: JDir = { c: [] };
    if (d.explicit) out.i = inode(d.inode);
    if (d.opaque) out.o = 1;
    for (const [name, n] of d.children) {
      out.c.push([name, n.t === "whiteout" ? { w: 1 } : n.t === "dir" ? { d: dir(n.dir) } : n.lower !== undefined ? { x: n.lower } : { l: inode(n.inode) }]);
    }
    return out;
  };
  const root_ = dir(root);
  return JSON.stringify({ v: VERSION, inodes, root: root_ });
}

/**
 * Pure: JSON text → a layer tree, hardlinks into lower layers resolved against `lower`. Returns
 * undefined when the entry cannot be used (other version, an object gone, a link target gone).
 */
export function decodeLayer(text: string, lower: Dir, hasObject: (digest: string) => boolean): Dir | undefined {
  const j = JSON.parse(text) as { v: number; inodes: JInode[]; root: JDir };
  if (j.v !== VERSION) return undefined;
  const inodes: Inode[] = [];
  for (const x of j.inodes) {
    if (x.k === "file" && x.z! > 0 && !hasObject(x.d!)) return undefined;
    const i: Inode = {
      kind: x.k, perm: x.p, uid: x.u, gid: x.g, mtimeSec: x.s, mtimeNsec: x.n, size: x.z ?? 0,
      xattrs: (x.x ?? []).map(([n, v]) => ({ name: Buffer.from(n, "latin1"), value: Buffer.from(v, "base64") })),
    };
    if (x.k === "file") i.data = { kind: "object", digest: x.d! };
    if (x.t !== undefined) i.target = Buffer.from(x.t, "base64");
    if (x.ma !== undefined) { i.rdevMajor = x.ma; i.rdevMinor = x.mi; }
    inodes.push(i);
  }
  let ok = true;
  const dir = (jd: JDir): Dir => {
    const d = emptyDir(jd.i !== undefined, jd.i !== undefined ? inodes[jd.i] : undefined);
    d.opaque = jd.o === 1;
    for (const [name, n] of jd.c) {
      let node: Node;
      if ("w" in n) node = { t: "whiteout" };
      else if ("d" in n) node = { t: "dir", dir: dir(n.d) };
      else if ("l" in n) node = { t: "leaf", inode: inodes[n.l]! };
      else {
        const t = lookup(lower, n.x.split("/"));
        if (t?.t !== "leaf") { ok = false; continue; }
        node = { t: "leaf", inode: t.inode, lower: n.x };
      }
      d.children.set(name, node);
    }
    return d;
  };
  const root = dir(j.root);
  return ok ? root : undefined;
}

/** The system side: one file per layer blob under `dir`. */
export class LayerCache {
  constructor(private readonly dir: string) {}

  private path(blobDigest: string): string {
    return join(this.dir, `${blobDigest.replace(/^sha256:/, "")}.json`);
  }

  load(blobDigest: string, lower: Dir, hasObject: (d: string) => boolean): Dir | undefined {
    const p = this.path(blobDigest);
    if (!existsSync(p)) return undefined;
    try {
      return decodeLayer(readFileSync(p, "utf8"), lower, hasObject);
    } catch {
      return undefined; // a damaged entry is only a cache miss
    }
  }

  /** Not fsynced: a torn entry fails to parse and is a miss. */
  save(blobDigest: string, layer: Dir): void {
    mkdirSync(this.dir, { recursive: true });
    const p = this.path(blobDigest);
    writeFileSync(`${p}.tmp`, encodeLayer(layer));
    renameSync(`${p}.tmp`, p);
  }
}
