#!/usr/bin/env bash
# check-no-rules.sh: rudder writes no iptables or nftables rules; fails
# showing them when this machine has any.
source "$(dirname "$0")/lib.sh"

rules=$(iptables-save 2>/dev/null | grep -v '^#' || true)
[[ -z $rules ]] || die "iptables-save is not empty on $(hostname):
$rules"
ruleset=$(nft list ruleset)
[[ -z $ruleset ]] || die "nft list ruleset is not empty on $(hostname):
$ruleset"
say "$(hostname): iptables-save and nft list ruleset are empty"
