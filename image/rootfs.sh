#!/bin/bash
# The base image's Debian rootfs as a tarball, cached under $PARTICLE_CACHE by suite, mirror, day and
# package list: the archive moves every day, so "the same inputs" means this cached tarball (plus
# dist/), never a fresh mmdebstrap. Prints the tarball's path.
set -euo pipefail
SUITE=trixie
MIRROR=http://deb.debian.org/debian
# Bump when the steps below change.
VERSION=1
PACKAGES=linux-image-amd64,systemd,systemd-sysv,dracut,erofs-utils,fsverity,e2fsprogs,udev,kmod,zstd,skopeo,systemd-boot,systemd-boot-efi,dosfstools,fdisk,cpio,ca-certificates
CACHE=${PARTICLE_CACHE:-$HOME/.cache/particle-os}
DAY=${PARTICLE_IMAGE_DAY:-$(date -u +%F)}
key=$(printf '%s\n' "$VERSION" "$SUITE" "$MIRROR" "$DAY" "$PACKAGES" | sha256sum | cut -c1-16)
out=$CACHE/image-rootfs-$key.tar
if [ ! -f "$out" ]; then
  mkdir -p "$CACHE/tmp"
  tmp=$(mktemp -d "$CACHE/tmp/image-rootfs.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # INITRD=No: particle builds the initramfs when it stages; the .debs and apt lists are not the OS.
  INITRD=No mmdebstrap --variant=apt --quiet --include="$PACKAGES" \
    --customize-hook='rm -rf "$1"/boot/initrd.img-* "$1"/var/lib/apt/lists/* "$1"/tmp/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb' \
    "$SUITE" "$tmp/rootfs.tar" "$MIRROR" >&2
  mv "$tmp/rootfs.tar" "$out"
fi
echo "$out"
