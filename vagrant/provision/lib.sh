# Shared helpers of the provisioning scripts (sourced, not run).
# Every script is idempotent: running it twice changes nothing the second time.
set -euo pipefail

RUDDER_ETC=/etc/rudder
RUDDER_CP_DATA=/var/lib/rudder/controlplane
RUDDER_AGENT_STATE=/var/lib/rudder/agent
RUDDER_GRPC_PORT=7400
RUDDER_HTTP_PORT=7401

say() { printf '%s: %s\n' "${0##*/}" "$*"; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every half second until it
# succeeds; fails naming DESCRIPTION after SECONDS.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die "timed out after ${seconds}s waiting for ${what}"
        fi
        sleep 0.5
    done
}

# has_subcommand BINARY SUBCOMMAND: whether the installed binary knows it
# (init/join arrive with the join work; until then the scripts start the
# processes themselves, with the same files and unit names).
has_subcommand() {
    "$1" "$2" --help >/dev/null 2>&1
}

# start_unit NAME ENVFILE VAR BINARY: runs BINARY $VAR as systemd unit NAME,
# the installed unit when there is one, else a transient unit reading the
# same EnvironmentFile.
start_unit() {
    local name=$1 envfile=$2 var=$3 binary=$4
    if systemctl cat "$name.service" >/dev/null 2>&1 && ! systemctl show -p Transient --value "$name.service" | grep -q yes; then
        systemctl daemon-reload
        systemctl enable --now "$name.service"
        systemctl restart "$name.service"
        return
    fi
    systemctl stop "$name.service" >/dev/null 2>&1 || true
    systemctl reset-failed "$name.service" >/dev/null 2>&1 || true
    # shellcheck disable=SC2016 # expanded by systemd, not here
    systemd-run --unit "$name" --property "EnvironmentFile=$envfile" \
        --property Restart=on-failure --property LimitNOFILE=1048576 \
        /bin/sh -c "exec $binary \$$var"
}

# answers_from TARGET WANT...: requests http://TARGET/ (bounded: at most 60
# requests over at most 30 s) until every name in WANT has answered; prints
# who answered; fails naming the ones that did not. Runs its client with
# the command prefix in $CLIENT_PREFIX (e.g. `ip netns exec POD`).
answers_from() {
    local target=$1
    shift
    local -A seen=()
    local round line missing=()
    for round in $(seq 1 12); do
        while read -r line; do
            [[ $line =~ pod=([^ ]+) ]] && seen[${BASH_REMATCH[1]}]=1
        done < <(${CLIENT_PREFIX:-} rudder-testapp http-get --to "$target" --count 5 \
            --timeout-ms 2000 --retry-ms 2000 2>/dev/null || true)
        missing=()
        for want in "$@"; do
            [[ -n ${seen[$want]:-} ]] || missing+=("$want")
        done
        ((${#missing[@]} == 0)) && break
    done
    echo "answered: ${!seen[*]}"
    ((${#missing[@]} == 0)) || { echo "did not answer: ${missing[*]}"; return 1; }
}
