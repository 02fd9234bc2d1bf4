// One layer blob → one layer tree, streamed: decompressor → tar reader → layer builder, with file
// contents going into the object sink. Nothing is unpacked to a directory.
import { TarReader } from "../tar/reader.ts";
import { blobPath, type LayerRef } from "./layout.ts";
import { blobMatches, openBlob } from "./decompress.ts";
import { LayerBuilder, type Dir } from "./layers.ts";
import type { ObjectSink } from "./objects-sink.ts";

export async function unpackLayer(layout: string, layer: LayerRef, what: string, lower: Dir, sink: ObjectSink, onRead: (n: number) => void): Promise<Dir> {
  const path = blobPath(layout, layer.digest);
  const builder = new LayerBuilder(lower, what);
  const tar = new TarReader((e) => {
    const inode = builder.add(e);
    return inode ? sink.open(inode, `${what}: ${JSON.stringify(e.path.toString())}`) : undefined;
  });
  const blob = openBlob(path, layer.digest, layer.compression, onRead);
  try {
    for await (const chunk of blob.chunks) tar.push(chunk);
    tar.end();
    await blob.done;
  } catch (e) {
    blob.abort();
    // A decoder or tar error on a blob that does not match its digest: the corruption is the news.
    const msg = (e as Error).message;
    if (!/is corrupted/.test(msg) && !(await blobMatches(path, layer.digest).catch(() => false))) {
      throw new Error(`${what}: blob ${layer.digest} is corrupted (its content does not match its digest)`);
    }
    throw new Error(msg.startsWith(what) ? msg : `${what}: ${msg}`);
  }
  return builder.root;
}
