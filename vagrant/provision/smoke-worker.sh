#!/usr/bin/env bash
# smoke-worker.sh NAME SMOKEFILE: on worker NAME, from a pod running here,
# reaches the web Service's ClusterIP until every replica has answered
# (SMOKEFILE: what smoke-controlplane.sh wrote).
source "$(dirname "$0")/lib.sh"

name=${1:?usage: smoke-worker.sh NAME SMOKEFILE}
smokefile=${2:?usage: smoke-worker.sh NAME SMOKEFILE}
# shellcheck source=/dev/null
source "$smokefile"
: "${CLUSTER_IP:?$smokefile lacks CLUSTER_IP}" "${PODS:?$smokefile lacks PODS}"
read -r -a pods <<<"$PODS"

pod_ns=$(ip netns list | awk -v p="rudder-$name-" 'index($1, p) == 1 {print $1; exit}')
[[ -n $pod_ns ]] || die "no pod sandbox on $name (ip netns list: $(ip netns list | tr '\n' ' '))"
export CLIENT_PREFIX="ip netns exec $pod_ns"
if out=$(answers_from "$CLUSTER_IP:80" "${pods[@]}"); then
    say "ClusterIP $CLUSTER_IP:80 from pod sandbox $pod_ns on $name: every replica answered ($out)"
else
    die "ClusterIP $CLUSTER_IP:80 from pod sandbox $pod_ns on $name: FAILED ($out)"
fi
