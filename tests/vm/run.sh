#!/bin/sh
# make check-systemd: boot Debian 12 with systemd as PID 1 under qemu and
# run the installed units for real (tests/vm/guest.py does the checks).
#
#   tests/vm/run.sh SRCDIR BUILDDIR
#
# 1. A small Debian 12 root filesystem, built once with mmdebstrap from the
#    machine's own apt sources and cached in $SLACKD_VM_CACHE (default
#    /var/cache/slackd-vm), keyed by the package list, the part of this
#    script that builds it (step 1) and the guest's test unit: adding a
#    check does not rebuild it.
# 2. The Debian packages slackd and slackctl: those in $SLACKD_DEB_DIR if
#    it has them (CI builds them first with scripts/deb), else built now by
#    scripts/deb --no-lintian into BUILDDIR/vm/deb; shared with the guest
#    read-only over 9p together with guest.py and the fake Slack.  The guest
#    installs them with apt, its dependencies from the image (the guest has
#    no network), then removes, purges and reinstalls them.
# 3. qemu-system-x86_64 under TCG boots the cached image with -snapshot (it
#    is never modified); a oneshot unit in the image runs guest.py and
#    powers off.  Console on ttyS0, captured to BUILDDIR/vm/console.log.
# 4. Every "VMTEST ok NAME" / "VMTEST not ok NAME: WHY" line the guest
#    printed becomes a TAP line on stdout; a check that printed nothing
#    fails.  Without root, qemu or mmdebstrap: one TAP "skip" with the
#    reason.
set -u
srcdir=$(cd "$1" && pwd)
builddir=$(cd "$2" && pwd)
cache=${SLACKD_VM_CACHE:-/var/cache/slackd-vm}
vm=$builddir/vm
qemu_timeout=${SLACKD_VM_TIMEOUT:-900}

# The checks guest.py runs, in order; each must report.
CHECKS="setup activation status-text group-member-sends outsider-refused
reload-keeps-clients watchdog-restarts invalid-token-not-restarted
app-token-credential journal-priorities token-not-in-journal template-instance stop-clean
stop-drains socket-removed-on-stop remove-keeps-config purge-removes-all
reinstall upgrade-restarts"

# The packages' runtime dependencies are here: the guest installs the .debs
# without a network.
PACKAGES="systemd systemd-sysv udev kmod linux-image-amd64 initramfs-tools
libevent-2.1-7 libevent-pthreads-2.1-7 libwebsockets17 libjson-c5 libssl3
libsystemd0 libnats3.4 init-system-helpers python3 python3-websockets
ca-certificates"

skip() {
	echo "1..0 # SKIP $*"
	echo "check-systemd: skipped: $*" >&2
	exit 0
}

log() { echo "check-systemd: $*" >&2; }

[ "$(id -u)" -eq 0 ] || skip "needs root (mmdebstrap, mkfs.ext4 -d)"
for tool in qemu-system-x86_64 mmdebstrap mkfs.ext4; do
	command -v $tool >/dev/null 2>&1 ||
	    skip "$tool not found (apt-get install qemu-system-x86 mmdebstrap)"
done
sources=
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
	[ -s "$f" ] && { sources=$f; break; }
done
[ -n "$sources" ] || skip "no apt sources file to build the guest from"

# ---- 1. the root filesystem, cached -------------------------------------
key=$( { echo "$PACKAGES"
	sed -n '/^# ---- 1\./,/^# ---- 2\./p' "$srcdir/tests/vm/run.sh"
	cat "$srcdir/tests/vm/slackd-vmtest.service"; } | sha256sum | cut -c1-16)
image=$cache/$key
if [ ! -s "$image/rootfs.img" ]; then
	log "building the guest root filesystem ($image)"
	t0=$(date +%s)
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	if ! mmdebstrap --variant=minbase --mode=root --format=directory \
	    --include="$(echo $PACKAGES | tr ' ' ',')" \
	    --customize-hook='echo slackd-vm > "$1/etc/hostname"' \
	    --customize-hook='echo "/dev/vda / ext4 defaults 0 1" > "$1/etc/fstab"' \
	    --customize-hook='for u in systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer serial-getty@ttyS0.service getty@tty1.service; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
	    --customize-hook='mkdir -p "$1/mnt/slackd"' \
	    --customize-hook="cp '$srcdir/tests/vm/slackd-vmtest.service' \"\$1/etc/systemd/system/\"" \
	    --customize-hook='mkdir -p "$1/etc/systemd/system/multi-user.target.wants" && ln -sf ../slackd-vmtest.service "$1/etc/systemd/system/multi-user.target.wants/slackd-vmtest.service"' \
	    bookworm "$tmp/root" "$sources" >"$tmp/mmdebstrap.log" 2>&1; then
		tail -n 40 "$tmp/mmdebstrap.log" >&2
		echo "1..1"
		echo "not ok 1 - check-systemd: building the guest failed"
		exit 1
	fi
	cp "$tmp"/root/boot/vmlinuz-* "$tmp/vmlinuz"
	cp "$tmp"/root/boot/initrd.img-* "$tmp/initrd.img"
	size=$(du -sm "$tmp/root" | cut -f1)
	mkfs.ext4 -q -L slackd-vm -d "$tmp/root" "$tmp/rootfs.img" \
	    "$((size + size / 2 + 256))M" >&2 || exit 1
	rm -rf "$tmp/root" "$image"
	mv "$tmp" "$image"
	trap - EXIT
	# Images for other package lists or scripts are not used again.
	find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" \
	    -name '????????????????' -exec rm -rf {} +
	log "guest built in $(( $(date +%s) - t0 )) s"
fi

# ---- 2. the Debian packages ------------------------------------------------
rm -rf "$vm/share"
mkdir -p "$vm/share/deb"
debs=${SLACKD_DEB_DIR:-}
if [ -z "$debs" ] || ! ls "$debs"/slackd_*.deb "$debs"/slackctl_*.deb \
    >/dev/null 2>&1; then
	log "building the Debian packages into $vm/deb (scripts/deb)"
	debs=$vm/deb
	"$srcdir/scripts/deb" --no-lintian "$debs" >"$vm/build.log" 2>&1 || {
		tail -n 40 "$vm/build.log" >&2
		echo "1..1"
		echo "not ok 1 - check-systemd: building the Debian packages failed"
		exit 1
	}
fi
cp "$debs"/slackd_*.deb "$debs"/slackctl_*.deb "$vm/share/deb/"
log "packages: $(cd "$vm/share/deb" && echo *.deb)"
cp "$srcdir/tests/vm/guest.py" "$srcdir/tests/fakeslack.py" "$vm/share/"

# ---- 3. boot -----------------------------------------------------------
log "booting the guest (TCG; console in $vm/console.log)"
t1=$(date +%s)
rm -f "$vm/console.log"
timeout "$qemu_timeout" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp 2 -m 1024 \
    -display none -no-reboot -nic none -monitor none \
    -serial "file:$vm/console.log" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0" \
    -drive "file=$image/rootfs.img,if=virtio,format=raw" -snapshot \
    -virtfs "local,path=$vm/share,mount_tag=slackd,security_model=none,readonly=on" \
    >"$vm/qemu.log" 2>&1
status=$?
t2=$(date +%s)
log "guest ran $((t2 - t1)) s (qemu exit $status)"

# ---- 4. results ---------------------------------------------------------
n=0
failed=0
set -- $CHECKS
echo "1..$#"
for name in "$@"; do
	n=$((n + 1))
	line=$(tr -d '\r' <"$vm/console.log" 2>/dev/null |
	    sed -n 's/^.*\(VMTEST \)/\1/p' |
	    grep -E "^VMTEST (ok|not ok) $name( |:|\$)" | head -n1)
	case $line in
	"VMTEST ok $name"*)
		echo "ok $n - $name${line#VMTEST ok $name}" ;;
	"VMTEST not ok $name"*)
		failed=$((failed + 1))
		echo "not ok $n - $name${line#VMTEST not ok $name}" ;;
	*)
		failed=$((failed + 1))
		echo "not ok $n - $name: no result (qemu exit $status)" ;;
	esac
done
if [ "$failed" -ne 0 ] || [ "$status" -ne 0 ]; then
	log "the last 60 lines of the console:"
	tr -d '\r' <"$vm/console.log" | tail -n 60 >&2
	exit 1
fi
exit 0
