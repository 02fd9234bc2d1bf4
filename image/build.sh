#!/bin/bash
# `make image`: the Particle-OS base image as an OCI layout (docs/image.md). Inputs: the cached
# Debian rootfs (image/rootfs.sh) and dist/; the same inputs give the same manifest digest.
# Usage: image/build.sh LAYOUT [TAG]   (prints the manifest digest)
# PARTICLE_IMAGE_MAX_LAYERS=N: layers split along dpkg packages (`particle image chunk`), at most N.
set -euo pipefail
layout=$1
tag=${2:-latest}
repo=$(cd "$(dirname "$0")/.." && pwd)
rootfs=$("$repo/image/rootfs.sh")
# File times newer than this are clamped to it; `created` is this. Default: when the rootfs was built.
rootfs_key=$(basename "$rootfs" .tar)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$rootfs")}
cache=${PARTICLE_CACHE:-$HOME/.cache/particle-os}
mkdir -p "$cache/tmp"
tree=$(mktemp -d "$cache/tmp/image-tree.XXXXXX")
trap 'rm -rf "$tree"' EXIT
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$rootfs" -C "$tree"
# An image's /dev is empty: the runtime (or the booted kernel) provides the nodes.
find "$tree/dev" -mindepth 1 -delete
# Not with this script's SOURCE_DATE_EPOCH (the rootfs time): the binaries' build time would change, so
# make would rebuild dist/ under the caller, and bun's progress would land on stdout, where the digest goes.
env -u SOURCE_DATE_EPOCH make -C "$repo" --no-print-directory -s install DESTDIR="$tree" >&2
# bootc's place for the kernel, beside its modules (a hardlink: the same file, not a second copy).
for k in "$tree"/boot/vmlinuz-*; do
  kver=${k##*/vmlinuz-}
  ln -f "$k" "$tree/usr/lib/modules/$kver/vmlinuz"
done
# Mount points an immutable root cannot create at boot: the physical root and the ESP.
mkdir -p "$tree/sysroot" "$tree/efi"
action=(pack)
[ -n "${PARTICLE_IMAGE_MAX_LAYERS:-}" ] && action=(chunk --max-layers "$PARTICLE_IMAGE_MAX_LAYERS")
"$repo/dist/particle" image "${action[@]}" "$tree" "$layout" --tag "$tag" \
  --label "org.opencontainers.image.title=Particle-OS base" --label "org.particle-os.rootfs=${rootfs_key#image-rootfs-}"
