#!/usr/bin/env bash
# install.sh SRC: installs rudder from SRC, either a bundle from `cargo xtask
# dist` (a directory with install.sh) or a directory of the project's
# binaries (target/debug or target/release), to the shared install layout:
# /usr/local/bin, /opt/cni/bin/rudder-cni, /etc/cni/net.d/10-rudder.conflist.
source "$(dirname "$0")/lib.sh"

src=${1:?usage: install.sh SRC (a bundle directory or a directory of binaries)}
[[ -d $src ]] || die "$src is not a directory"

if [[ -x $src/install.sh ]]; then
    say "installing the bundle in $src"
    "$src/install.sh"
else
    say "installing the binaries in $src"
    for bin in rudder-controlplane rudder-agent rudderctl rudder-testapp; do
        [[ -x $src/$bin ]] || die "$src/$bin is missing (build with cargo xtask build-ebpf && cargo build --bins)"
        install -m 0755 "$src/$bin" "/usr/local/bin/$bin"
    done
    [[ -x $src/rudder-cni ]] || die "$src/rudder-cni is missing"
    install -D -m 0755 "$src/rudder-cni" /opt/cni/bin/rudder-cni
fi
install -d -m 0755 "$RUDDER_ETC" /etc/cni/net.d /var/lib/rudder
# A test app for the smoke test's pods; bundles ship only the daemons.
if [[ ! -x /usr/local/bin/rudder-testapp && -x $src/rudder-testapp ]]; then
    install -m 0755 "$src/rudder-testapp" /usr/local/bin/rudder-testapp
fi
say "installed: $(/usr/local/bin/rudder-agent --version)"
