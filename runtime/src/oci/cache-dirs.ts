// Where the image caches live in the store. Apart from image-tree.ts so that cleanup, which only
// prunes them, does not load the image fetcher and its streaming unpacker.
import { join } from "node:path";
import type { StoreLayout } from "../store/layout.ts";

/** The layout cache every image is copied into: blobs are shared between images and stagings. */
export const ociCacheDir = (l: StoreLayout): string => join(l.cache, "oci");
/** Unpacked layers (layer-cache.ts), by blob digest. */
export const layerCacheDir = (l: StoreLayout): string => join(l.cache, "oci-layers");
