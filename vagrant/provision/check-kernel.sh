#!/usr/bin/env bash
# check-kernel.sh: what the VMs' distribution kernel gives rudder that test
# hosts on one kernel cannot show: sch_fq (EDT pacing for bandwidth limits)
# on a device of its own, and the kernel's BPF features the agent probes.
source "$(dirname "$0")/lib.sh"

dev=rudderchk0
ip link del "$dev" 2>/dev/null || true
ip link add "$dev" type dummy
trap 'ip link del "$dev" 2>/dev/null || true' EXIT
tc qdisc add dev "$dev" root fq || die "$(hostname): no sch_fq in kernel $(uname -r)"
tc qdisc show dev "$dev" | grep -q '^qdisc fq ' || die "$(hostname): fq did not attach"
say "$(hostname): kernel $(uname -r): sch_fq attaches"
