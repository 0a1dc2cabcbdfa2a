#!/usr/bin/env bash
# worker.sh NAME ADDRESS POD_CIDR JOINDIR: joins this machine to the cluster
# as node NAME, its NodePorts on the interface holding ADDRESS, with pod
# subnet POD_CIDR, using what controlplane.sh left in JOINDIR
# (copied here by the caller: `vm` over ssh, the Vagrantfile by a trigger).
source "$(dirname "$0")/lib.sh"

usage="usage: worker.sh NAME ADDRESS POD_CIDR JOINDIR"
name=${1:?$usage}
addr=${2:?$usage}
pod_cidr=${3:?$usage}
joindir=${4:?$usage}
uplink=$(ip -o -4 addr show | awk -v a="$addr" 'index($4, a "/") == 1 {print $2; exit}')
[[ -n $uplink ]] || die "no interface holds $addr"
[[ -s $joindir/join-command ]] || die "$joindir/join-command is missing: run controlplane.sh first"
read -r -a join <"$joindir/join-command"

sysctl -qw net.ipv4.ip_forward=1
echo net.ipv4.ip_forward=1 >/etc/sysctl.d/60-rudder.conf
# The pods' network: one bridge per node, addresses from its pod subnet.
if [[ ! -e /etc/cni/net.d/10-rudder.conflist ]] || grep -q '"subnet"' /etc/cni/net.d/10-rudder.conflist; then
    cat >/etc/cni/net.d/10-rudder.conflist <<CONF
{"cniVersion": "1.0.0", "name": "rudder", "plugins": [{"type": "rudder-cni", "bridge": "cni0",
 "ipam": {"subnet": "$pod_cidr", "dataDir": "$RUDDER_AGENT_STATE/ipam"},
 "bandwidthDir": "$RUDDER_AGENT_STATE/bandwidth"}]}
CONF
fi

if [[ ${join[0]:-} == rudder-agent ]] && has_subcommand rudder-agent join; then
    say "${join[*]:0:3} ... --node-name $name"
    "${join[@]}" --node-name "$name" --config-dir "$RUDDER_ETC" --no-start -- \
        --uplink "$uplink" --pod-cidr "$pod_cidr" --state-dir "$RUDDER_AGENT_STATE" \
        --cni-conf-dir /etc/cni/net.d --cni-bin-dir /opt/cni/bin --metrics-listen 0.0.0.0:10250
    start_unit rudder-agent "$RUDDER_ETC/agent.env" RUDDER_AGENT_OPTS /usr/local/bin/rudder-agent
else
    [[ -s $joindir/kubeconfig ]] || die "this build has no \`rudder-agent join\` and $joindir has no kubeconfig"
    install -m 0600 "$joindir/kubeconfig" "$RUDDER_ETC/agent.kubeconfig"
    server=${join[1]:?join-command lacks --server}
    printf 'RUDDER_AGENT_OPTS="serve --node %s --uplink %s --controlplane %s --kubeconfig %s --pod-cidr %s --state-dir %s --cni-conf-dir /etc/cni/net.d --cni-bin-dir /opt/cni/bin --metrics-listen 0.0.0.0:10250"\n' \
        "$name" "$uplink" "$server" "$RUDDER_ETC/agent.kubeconfig" "$pod_cidr" "$RUDDER_AGENT_STATE" \
        >"$RUDDER_ETC/agent.env"
    start_unit rudder-agent "$RUDDER_ETC/agent.env" RUDDER_AGENT_OPTS /usr/local/bin/rudder-agent
fi
wait_for 60 "rudder-agent.service to run" systemctl is-active --quiet rudder-agent.service
say "node $name joined (pods from $pod_cidr)"
