#!/usr/bin/env bash
# smoke-controlplane.sh EXAMPLES WORKER_ADDRESS...: on the control plane,
# applies EXAMPLES/web.yaml, waits until every replica is ready, then reaches
# the NodePort on each worker until every replica has answered. Writes the
# ClusterIP and the replicas' names to /var/lib/rudder/join/smoke for
# smoke-worker.sh.
source "$(dirname "$0")/lib.sh"

examples=${1:?usage: smoke-controlplane.sh EXAMPLES WORKER_ADDRESS...}
shift
(($# > 0)) || die "no worker addresses given"
export KUBECONFIG=$RUDDER_ETC/admin.kubeconfig

nodes_ready() {
    (($(rudderctl get nodes -o json | jq '[.items[] | select(any(.status.conditions[]?;
        .type == "Ready" and .status == "True"))] | length') >= $#))
}
wait_for 120 "$# Ready nodes" nodes_ready "$@"
rudderctl get nodes -o wide
say "apply $examples/web.yaml"
rudderctl apply -f "$examples/web.yaml"
want=$(rudderctl get deployment web -o json | jq -r .spec.replicas)
ready='[.items[] | select(.status.phase == "Running" and
    any(.status.conditions[]?; .type == "Ready" and .status == "True")) | .metadata.name]'
ready_replicas() {
    (($(rudderctl get pods -l app=web -o json | jq "$ready | length") == want))
}
wait_for 120 "$want ready replicas of web" ready_replicas
rudderctl get pods -l app=web -o wide
mapfile -t pods < <(rudderctl get pods -l app=web -o json | jq -r "$ready[]")
cluster_ip=$(rudderctl get service web -o json | jq -r .spec.clusterIP)
[[ $cluster_ip =~ ^[0-9.]+$ ]] || die "no ClusterIP for service web: $cluster_ip"
printf 'CLUSTER_IP=%s\nPODS="%s"\n' "$cluster_ip" "${pods[*]}" >/var/lib/rudder/join/smoke

failed=0
for worker in "$@"; do
    if out=$(answers_from "$worker:30080" "${pods[@]}"); then
        say "NodePort $worker:30080 from $(hostname): every replica answered ($out)"
    else
        say "NodePort $worker:30080 from $(hostname): FAILED ($out)"
        failed=1
    fi
done
exit $failed
