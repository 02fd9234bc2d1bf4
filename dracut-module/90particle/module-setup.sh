#!/bin/bash
# dracut module "particle": particle-root.service runs particle-boot after sysroot.mount has mounted
# the physical root (root=), and turns /sysroot into the deployment's root before switch-root.

# Only when asked (--add particle or add_dracutmodules+=" particle "): the binary is ~100 MB.
check() {
    require_binaries /usr/bin/particle-boot || return 1
    return 255
}

# particle.var=luks (strict sealed mode) needs LUKS and the TPM in the initramfs. When the tree has
# them, dracut's own modules carry them (crypt, systemd-cryptsetup, tpm2-tss, systemd-pcrphase:
# the last extends PCR 11 with enter-initrd, the phase the owner's policy is signed for); this
# module adds what particle-boot runs besides: systemd-cryptenroll and mkfs.ext4 for the first boot.
has_luks() {
    require_binaries cryptsetup "$systemdutildir"/systemd-cryptsetup systemd-cryptenroll >/dev/null 2>&1
}

depends() {
    echo systemd
    if has_luks; then
        echo crypt systemd-cryptsetup
        # tpm2-tss and systemd-pcrphase say for themselves whether the tree can have them.
        local m rc
        for m in tpm2-tss systemd-pcrphase; do
            module_check "$m" >/dev/null 2>&1
            rc=$?
            [[ $rc == 0 || $rc == 255 ]] && echo "$m"
        done
    fi
    return 0
}

installkernel() {
    instmods erofs overlay loop squashfs ext4
    has_luks && instmods dm_crypt
    return 0
}

install() {
    # particle-boot is a Bun executable whose program lives in the ELF file itself: strip destroys
    # it. dracut strips every executable in the image at the very end, after all modules, so turn
    # that off for this build (module scripts are sourced into dracut's own shell).
    do_strip=no
    inst_binary /usr/bin/particle-boot
    inst_simple "$moddir/particle-root.service" "$systemdsystemunitdir/particle-root.service"
    if has_luks; then
        inst_multiple cryptsetup systemd-cryptenroll mkfs.ext4
        inst_libdir_file "cryptsetup/libcryptsetup-token-systemd-tpm2.so"
    fi
    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-fs.target particle-root.service
}
