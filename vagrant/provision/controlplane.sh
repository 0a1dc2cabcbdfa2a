#!/usr/bin/env bash
# controlplane.sh ADDRESS: makes this machine the control plane, serving on
# ADDRESS, and leaves what a worker needs to join in /var/lib/rudder/join/
# (join-command: the `rudder-agent join ...` line; kubeconfig: credentials
# for a worker, only where init is not there yet).
source "$(dirname "$0")/lib.sh"

addr=${1:?usage: controlplane.sh ADDRESS}
joindir=/var/lib/rudder/join
install -d -m 0700 "$joindir"

if has_subcommand rudder-controlplane init; then
    say "rudder-controlplane init --advertise-address $addr"
    # init keeps a controlplane.env that differs from its options (an
    # operator's edits); the bundle's default one is not that: let init
    # write the line for this address.
    if [[ -e $RUDDER_ETC/controlplane.env ]] && ! grep -q -- "--advertise-address" "$RUDDER_ETC/controlplane.env"; then
        rm -f "$RUDDER_ETC/controlplane.env"
    fi
    rudder-controlplane init --advertise-address "$addr" \
        --listen "$addr:$RUDDER_GRPC_PORT" --http-listen "$addr:$RUDDER_HTTP_PORT" \
        --data-dir "$RUDDER_CP_DATA" --config-dir "$RUDDER_ETC" --no-start | tee "$joindir/init.out"
    grep -o 'rudder-agent join .*' "$joindir/init.out" | tail -n 1 >"$joindir/join-command"
    [[ -s $joindir/join-command ]] || die "init printed no join command"
    # The installed unit when the bundle brought one, else a transient one
    # reading the same file.
    start_unit rudder-controlplane "$RUDDER_ETC/controlplane.env" RUDDER_CONTROLPLANE_OPTS \
        /usr/local/bin/rudder-controlplane
else
    say "no init in this build: starting the control plane on $addr with its own pki"
    printf 'RUDDER_CONTROLPLANE_OPTS="--data-dir %s --listen %s:%s --http-listen %s:%s"\n' \
        "$RUDDER_CP_DATA" "$addr" "$RUDDER_GRPC_PORT" "$addr" "$RUDDER_HTTP_PORT" \
        >"$RUDDER_ETC/controlplane.env"
    start_unit rudder-controlplane "$RUDDER_ETC/controlplane.env" RUDDER_CONTROLPLANE_OPTS \
        /usr/local/bin/rudder-controlplane
    wait_for 60 "the admin kubeconfig" test -s "$RUDDER_CP_DATA/pki/admin.kubeconfig"
    install -m 0600 "$RUDDER_CP_DATA/pki/admin.kubeconfig" "$RUDDER_ETC/admin.kubeconfig"
    install -m 0600 "$RUDDER_CP_DATA/pki/admin.kubeconfig" "$joindir/kubeconfig"
    echo "--server https://$addr:$RUDDER_GRPC_PORT" >"$joindir/join-command"
fi
export KUBECONFIG=$RUDDER_ETC/admin.kubeconfig
wait_for 60 "the API server to answer" rudderctl get nodes
say "control plane up on $addr; join material in $joindir"
