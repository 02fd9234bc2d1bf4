#!/bin/bash
# dracut module "particle": particle-root.service runs particle-boot after sysroot.mount has mounted
# the physical root (root=), and turns /sysroot into the deployment's root before switch-root.

# Only when asked (--add particle or add_dracutmodules+=" particle "): the binary is ~100 MB.
check() {
    require_binaries /usr/bin/particle-boot || return 1
    return 255
}

depends() {
    echo systemd
}

installkernel() {
    instmods erofs overlay loop squashfs ext4
}

install() {
    # particle-boot is a Bun executable whose program lives in the ELF file itself: strip destroys
    # it. dracut strips every executable in the image at the very end, after all modules, so turn
    # that off for this build (module scripts are sourced into dracut's own shell).
    do_strip=no
    inst_binary /usr/bin/particle-boot
    inst_simple "$moddir/particle-root.service" "$systemdsystemunitdir/particle-root.service"
    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-fs.target particle-root.service
}
