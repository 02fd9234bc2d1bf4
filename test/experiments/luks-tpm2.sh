#!/bin/bash
# Host experiment for /var on LUKS with a signed PCR 11 policy (docs/sealed-boot.md). Not part of
# `make test`: it needs root, swtpm, tpm2-tools, cryptsetup and a trixie guest tree. It shows, with
# no QEMU and no real TPM:
#  1. particle's PCR 11 prediction equals trixie's `systemd-measure calculate` for real UKI parts
#     (the tree's kernel, os-release and systemd-stub, whose own .sbat is measured too);
#  2. its PolicyPCR digest equals the one a TPM (swtpm) computes in a trial session;
#  3. trixie's systemd-cryptenroll (the systemd that unlocks at boot) enrolls a LUKS2 volume for
#     the signed policy (--tpm2-public-key) against swtpm, and unlocks it with particle's .pcrsig
#     once PCR 11 holds the value the stub would measure, and not before, nor after one more
#     extend (leave-initrd).
# The trixie tools run in a chroot of an overlay over the guest tree (systemd-cryptsetup and the TSS2
# libraries installed with apt into the overlay's upper layer; the cached tree is not touched),
# in a private mount namespace. There is no device-mapper here, so "unlocks" means: unseals the
# volume key, proven by using it to add a password slot (systemd-cryptenroll --unlock-tpm2-device).
# Usage: sudo test/experiments/luks-tpm2.sh [GUEST_TREE]   (~1 min, most of it apt)
set -euo pipefail
[ -n "${LUKS_TPM2_NS:-}" ] || LUKS_TPM2_NS=1 exec unshare -m --propagation private "$0" "$@"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TREE=${1:-$(ls -d ~/.cache/particle-os/guest-tree-* | head -1)}
W=$(mktemp -d /tmp/luks-tpm2.XXXXXX)
IN_TREE=""
cleanup() {
  [ -f "$W/swtpm.pid" ] && kill "$(cat "$W/swtpm.pid")" 2>/dev/null || true
  [ -n "$IN_TREE" ] && rm -rf "$IN_TREE"
  # Unmount before removing: $W/root binds /dev and $W itself.
  for m in "$W/root/x" "$W/root/proc" "$W/root/dev" "$W/root"; do mountpoint -q "$m" && umount "$m"; done
  rm -rf "$W"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT
step() { echo "== $*"; }

step "UKI parts from $TREE"
cp "$(ls "$TREE"/boot/vmlinuz-* | sort -V | tail -1)" "$W/linux"
cp "$TREE/usr/lib/os-release" "$W/osrel"
cp "$TREE/usr/lib/systemd/boot/efi/linuxx64.efi.stub" "$W/stub"
printf 'root=LABEL=particle-root rw particle.image=%s particle.var=luks' "$(printf x | sha256sum | cut -c1-64)" > "$W/cmdline"
head -c 4194304 /dev/urandom > "$W/initrd"
openssl genrsa -out "$W/priv.pem" 2048 2>/dev/null
PLAN=$(cd "$ROOT" && node_modules/.bin/bun test/experiments/luks-tpm2-plan.ts "$W")
PCR11=$(jq -r .pcr11 <<<"$PLAN"); POL=$(jq -r .pol <<<"$PLAN")
echo "sections: $(jq -c .sections <<<"$PLAN")"
echo "predicted PCR 11 (enter-initrd): $PCR11"

step "1. systemd-measure calculate (the guest tree's systemd, chroot)"
IN_TREE=$(mktemp -d "$TREE/tmp/luks-tpm2.XXXXXX"); rel=${IN_TREE#"$TREE"}
cp "$W"/{linux,osrel,cmdline,initrd,pcrpkey.pem,sbat} "$IN_TREE/"
MEASURED=$(chroot "$TREE" /usr/lib/systemd/systemd-measure calculate --bank=sha256 --phase=enter-initrd \
  --linux="$rel/linux" --osrel="$rel/osrel" --cmdline="$rel/cmdline" --initrd="$rel/initrd" --pcrpkey="$rel/pcrpkey.pem" --sbat="$rel/sbat" | sed -n 's/^11:sha256=//p')
echo "systemd-measure:                 $MEASURED"
[ "$MEASURED" = "$PCR11" ] || { echo "FAIL: PCR 11 prediction differs from systemd-measure"; exit 1; }

step "swtpm"
mkdir "$W/tpm"
swtpm socket --tpm2 --tpmstate dir="$W/tpm" --server type=unixio,path="$W/tpm.sock" \
  --ctrl type=unixio,path="$W/tpm.sock.ctrl" --flags not-need-init,startup-clear --daemon --pid file="$W/swtpm.pid"
for _ in $(seq 50); do [ -S "$W/tpm.sock" ] && break; sleep 0.1; done
export TPM2TOOLS_TCTI="swtpm:path=$W/tpm.sock" SYSTEMD_TPM2_DEVICE="swtpm:path=$W/tpm.sock"
tpm2_pcrread sha256:11

step "2. PolicyPCR digest from a TPM trial session"
printf '%s' "$PCR11" | xxd -r -p > "$W/pcr11.bin"
tpm2_startauthsession -S "$W/trial.ctx"
tpm2_policypcr -S "$W/trial.ctx" -l sha256:11 -f "$W/pcr11.bin" -L "$W/pol.bin" >/dev/null
tpm2_flushcontext "$W/trial.ctx"
TPMPOL=$(xxd -p -c 64 "$W/pol.bin")
echo "particle: $POL"; echo "swtpm:    $TPMPOL"
[ "$TPMPOL" = "$POL" ] || { echo "FAIL: PolicyPCR digest differs"; exit 1; }

step "trixie tools: overlay over the guest tree, apt-get install systemd-cryptsetup + TSS2"
R=$W/root; mkdir -p "$W/up" "$W/wk" "$R"
mount -t overlay overlay -o lowerdir="$TREE",upperdir="$W/up",workdir="$W/wk" "$R"
mount --bind /dev "$R/dev"; mount -t proc proc "$R/proc"; mkdir -p "$R/x"; mount --bind "$W" "$R/x"
cp /etc/resolv.conf "$R/etc/resolv.conf"
chroot "$R" apt-get update -qq
DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get install -y -qq --no-install-recommends systemd-cryptsetup \
  libtss2-tcti-swtpm0t64 libtss2-esys-3.0.2-0t64 libtss2-rc0t64 libtss2-mu-4.0.1-0t64 >/dev/null 2>&1
chroot "$R" systemd-cryptenroll --version | head -1
DEV="swtpm:path=/x/tpm.sock"

step "3. LUKS2 volume, TPM2 token enrolled for the signed policy (no literal PCRs)"
truncate -s 32M "$W/var.img"
printf 'one-time' | cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$W/var.img" -
chroot "$R" env PASSWORD=one-time systemd-cryptenroll --tpm2-device="$DEV" --tpm2-public-key=/x/pcrpkey.pem \
  --tpm2-public-key-pcrs=11 --tpm2-pcrs= /x/var.img
chroot "$R" systemd-cryptenroll --wipe-slot=password /x/var.img
chroot "$R" systemd-cryptenroll /x/var.img
cryptsetup luksDump "$W/var.img" | grep -E "^\s+(tpm2-pubkey-pcrs|tpm2-hash-pcrs|tpm2-pcr-bank):"
if printf 'one-time' | cryptsetup open --test-passphrase --key-file - "$W/var.img" 2>/dev/null; then echo "FAIL: one-time passphrase still works"; exit 1; fi

# systemd reads the signature where the stub's initramfs copy puts it.
mkdir -p "$R/run/systemd"; cp "$W/pcrsig.json" "$R/run/systemd/tpm2-pcr-signature.json"
# Unseal through the token; the volume key it yields adds a password slot named $1.
try_unlock() {
  chroot "$R" env NEWPASSWORD="$1" systemd-cryptenroll --unlock-tpm2-device="$DEV" --password /x/var.img
}
has_password() { printf '%s' "$1" | cryptsetup open --test-passphrase --key-file - "$W/var.img" 2>/dev/null; }

step "unlock with PCR 11 = 0 (nothing measured): must fail"
if try_unlock before; then echo "FAIL: unlocked with the wrong PCR 11"; exit 1; fi
step "replay the stub's and systemd-pcrphase's extends into PCR 11"
for d in $(jq -r '.extends[]' <<<"$PLAN"); do tpm2_pcrextend "11:sha256=$d"; done
NOW=$(tpm2_pcrread sha256:11 | sed -n 's/.*11 *: *0x//p' | tr 'A-F' 'a-f')
echo "PCR 11 now: $NOW"
[ "$NOW" = "$PCR11" ] || { echo "FAIL: replayed PCR 11 differs from the prediction"; exit 1; }
step "unlock in the 'initramfs' (PCR 11 as predicted): must succeed"
try_unlock initrd || { echo "FAIL: the signed policy did not unlock"; exit 1; }
has_password initrd || { echo "FAIL: the unsealed key did not open the volume"; exit 1; }
echo "unlocked: the unsealed volume key added a slot that opens the volume"
step "a .pcrsig for another command line (another UKI's): must fail"
cp "$W/pcrsig.json" "$W/pcrsig.good"
sed -i 's/particle.var=luks/particle.var=LUKS/' "$W/cmdline"
(cd "$ROOT" && node_modules/.bin/bun test/experiments/luks-tpm2-plan.ts "$W" >/dev/null)
cp "$W/pcrsig.json" "$R/run/systemd/tpm2-pcr-signature.json"
if try_unlock other; then echo "FAIL: unlocked with a signature for another PCR 11"; exit 1; fi
cp "$W/pcrsig.good" "$R/run/systemd/tpm2-pcr-signature.json"
step "leave-initrd extended: must fail again"
tpm2_pcrextend "11:sha256=$(printf leave-initrd | sha256sum | cut -c1-64)"
if try_unlock after; then echo "FAIL: unlocked after leave-initrd"; exit 1; fi
echo "PASS: prediction = systemd-measure, policy = TPM's, token unlocks only with PCR 11 at enter-initrd"
