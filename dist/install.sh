#!/bin/sh
# Installs a rudder bundle (made by `cargo xtask dist`) on this machine, or
# into DESTDIR for packaging and tests. Idempotent: running it again (say,
# with a newer bundle) replaces binaries and units and keeps the
# configuration, the data and the pinned eBPF state. Never interactive.
#
#   sudo ./install.sh [--pod-cidr 10.244.1.0/24] [--restart]
#   ./install.sh --destdir /tmp/root          # no root needed, nothing started
#
# Options:
#   --prefix DIR        binaries go to DIR/bin (default /usr/local; the units
#                       are rewritten to run them from there)
#   --destdir DIR       install under DIR (also the DESTDIR variable); no
#                       systemctl is run
#   --cni-bin-dir DIR   rudder-cni's directory (default /opt/cni/bin)
#   --cni-conf-dir DIR  the conflist's directory (default /etc/cni/net.d)
#   --pod-cidr CIDR     this node's pod subnet, written into the conflist
#                       (rewrites it; without it an existing one is kept)
#   --cni-version V     the conflist's cniVersion: 1.0.0 (default; what
#                       containerd 1.6/1.7 accept) or 1.1.0
#   --restart           restart rudder units that are running (upgrades)
#   -h, --help          this text
set -eu

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=/usr/local
DESTDIR=${DESTDIR:-}
CNI_BIN_DIR=/opt/cni/bin
CNI_CONF_DIR=/etc/cni/net.d
POD_CIDR=
CNI_VERSION=1.0.0
RESTART=no

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
        --destdir) need_value "$@"; DESTDIR=$2; shift 2 ;;
        --cni-bin-dir) need_value "$@"; CNI_BIN_DIR=$2; shift 2 ;;
        --cni-conf-dir) need_value "$@"; CNI_CONF_DIR=$2; shift 2 ;;
        --pod-cidr) need_value "$@"; POD_CIDR=$2; shift 2 ;;
        --cni-version) need_value "$@"; CNI_VERSION=$2; shift 2 ;;
        --restart) RESTART=yes; shift ;;
        -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

case "$PREFIX" in /*) ;; *) die "--prefix $PREFIX: give an absolute directory" ;; esac
case "$CNI_VERSION" in 1.0.0 | 1.1.0) ;; *) die "--cni-version $CNI_VERSION: rudder ships 1.0.0 or 1.1.0" ;; esac
if [ -n "$POD_CIDR" ]; then
    echo "$POD_CIDR" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|30)$' ||
        die "--pod-cidr $POD_CIDR: expected an IPv4 subnet such as 10.244.1.0/24 (/30 at most)"
fi
for f in bin/rudder-controlplane bin/rudder-agent bin/rudderctl cni/bin/rudder-cni \
    cni/net.d/10-rudder.conflist docs/operations.md config/controlplane.env config/agent.env \
    systemd/rudder-controlplane.service systemd/rudder-agent.service; do
    [ -f "$HERE/$f" ] || die "$HERE/$f is missing: run install.sh from an unpacked rudder bundle"
done

if [ -z "$DESTDIR" ]; then
    [ "$(id -u)" -eq 0 ] || die "installing into / needs root: run it with sudo, or give --destdir DIR"
    SYSTEMD=no
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then SYSTEMD=yes; fi
else
    case "$DESTDIR" in /*) ;; *) DESTDIR=$(pwd)/$DESTDIR ;; esac
    SYSTEMD=no
fi

# Copies $1 to $2 (mode $3) through a temporary file and a rename, so a
# running binary is replaced, not rewritten under the process.
put() {
    dir=$(dirname "$2")
    mkdir -p "$dir"
    tmp="$2.rudder-new.$$"
    cp "$1" "$tmp"
    chmod "$3" "$tmp"
    mv -f "$tmp" "$2"
}

# Installs $1 to $2 unless $2 exists: configuration belongs to the operator.
put_once() {
    if [ -e "$2" ]; then
        say "kept $2 (already there)"
    else
        put "$1" "$2" 0644
        say "wrote $2"
    fi
}

BIN=$DESTDIR$PREFIX/bin
for b in rudder-controlplane rudder-agent rudderctl; do
    put "$HERE/bin/$b" "$BIN/$b" 0755
done
put "$HERE/cni/bin/rudder-cni" "$DESTDIR$CNI_BIN_DIR/rudder-cni" 0755
for d in operations.md README.md; do
    put "$HERE/docs/$d" "$DESTDIR$PREFIX/share/doc/rudder/$d" 0644
done
say "installed rudder-controlplane, rudder-agent, rudderctl in $BIN; rudder-cni in $DESTDIR$CNI_BIN_DIR"

# Configuration: /etc/rudder, mode 0700 (it holds credentials once joined).
ETC=$DESTDIR/etc/rudder
mkdir -p "$ETC"
chmod 0700 "$ETC"
put_once "$HERE/config/controlplane.env" "$ETC/controlplane.env"
put_once "$HERE/config/agent.env" "$ETC/agent.env"
mkdir -p "$DESTDIR/var/lib/rudder"
chmod 0700 "$DESTDIR/var/lib/rudder"

# The conflist: written when asked for a pod CIDR or a version, kept otherwise.
CONFLIST=$DESTDIR$CNI_CONF_DIR/10-rudder.conflist
if [ -n "$POD_CIDR" ] || [ ! -e "$CONFLIST" ]; then
    tmp=$(mktemp)
    sed -e "s#\"cniVersion\": \"1.0.0\"#\"cniVersion\": \"$CNI_VERSION\"#" \
        ${POD_CIDR:+-e "s#\"subnet\": \"[^\"]*\"#\"subnet\": \"$POD_CIDR\"#"} \
        "$HERE/cni/net.d/10-rudder.conflist" >"$tmp"
    put "$tmp" "$CONFLIST" 0644
    rm -f "$tmp"
    say "wrote $CONFLIST (cniVersion $CNI_VERSION, subnet $(sed -n 's/.*"subnet": "\([^"]*\)".*/\1/p' "$CONFLIST"))"
    [ -n "$POD_CIDR" ] || say "note: give every node its own subnet with --pod-cidr (the same as the agent's --pod-cidr)"
else
    say "kept $CONFLIST (already there; --pod-cidr rewrites it)"
fi

# Units: in /etc/systemd/system, run from PREFIX.
UNITS=$DESTDIR/etc/systemd/system
for u in rudder-controlplane.service rudder-agent.service; do
    tmp=$(mktemp)
    sed -e "s#/usr/local/bin/#$PREFIX/bin/#g" -e "s#/usr/local/share/#$PREFIX/share/#g" "$HERE/systemd/$u" >"$tmp"
    put "$tmp" "$UNITS/$u" 0644
    rm -f "$tmp"
done
say "installed rudder-controlplane.service and rudder-agent.service in $UNITS"

# No sys-fs-bpf.mount: systemd (239 and later) mounts bpffs on /sys/fs/bpf
# itself and refuses a unit for that API file system; without systemd the
# agent mounts it at start.

if [ "$SYSTEMD" = yes ]; then
    systemctl daemon-reload
    for u in rudder-controlplane rudder-agent; do
        if systemctl is-active --quiet "$u.service"; then
            if [ "$RESTART" = yes ]; then
                systemctl restart "$u.service"
                say "restarted $u.service on the new binaries"
            else
                say "$u.service runs the old binary until restarted (--restart, or systemctl restart $u)"
            fi
        fi
    done
elif [ -z "$DESTDIR" ]; then
    say "systemd is not running here: the units are installed but nothing will start them;"
    say "run the binaries yourself with the options in /etc/rudder/*.env"
fi

say "done. Next: rudder-controlplane init (control plane), or the join command it prints (workers)."
