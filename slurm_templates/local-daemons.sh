# shellcheck shell=bash
# What the start.sh and stop.sh of the local test clusters (local-cluster: SLURM, local-gridengine:
# Grid Engine) share: messages, the bookkeeping of the daemons they start, waiting for a daemon to
# answer, the network of the two test nodes, installing missing packages, stopping a daemon.
# Sourced, after the script has set TAG (the message prefix), PIDS and LOG (directories), T0 (its
# start, `date +%s%N`) and, to wait, TIMEOUT (seconds).

say() { echo "[$TAG] $*"; }
die() { echo "[$TAG] ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1fs", (b - a) / 1e9 }'; }

# --- processes we started: $PIDS/NAME.pid holds "PID STARTTIME" -----------------------------
# The start time (field 22 of /proc/PID/stat) tells our process from a later one with a reused
# PID. A zombie (exited, not yet reaped) counts as gone.
proc_start() {  # proc_start PID -> prints its start time; fails if no such live process
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r -a fields <<< "${stat##*) }"   # fields[0] is the state, fields[19] the start time
    [ "${fields[0]}" != Z ] || return 1
    echo "${fields[19]}"
}
our_pid() {  # our_pid NAME -> prints the PID if the process we started as NAME still runs
    local pid='' start=''
    [ -r "$PIDS/$1.pid" ] || return 1
    read -r pid start < "$PIDS/$1.pid" || true
    [ -n "$pid" ] && [ -n "$start" ] && [ "$(proc_start "$pid" || true)" = "$start" ] || return 1
    echo "$pid"
}

# --- waiting for a daemon ---------------------------------------------------------------------
daemon_logs() {  # daemon_logs NAME -> its log files (a script may define its own after sourcing)
    echo "$LOG/$1.out" "$LOG/$1.log"
}
fail_with_logs() {  # fail_with_logs NAME MESSAGE
    local f
    echo "[$TAG] ERROR: $2" >&2
    for f in $(daemon_logs "$1"); do
        [ -s "$f" ] && { echo "--- last lines of $f:" >&2; tail -n 25 "$f" >&2; }
    done
    exit 1
}
wait_until() {  # wait_until NAME WHAT CMD... : poll CMD until it succeeds, NAME dies, or timeout
    local name=$1 what=$2 deadline=$((SECONDS + TIMEOUT))
    shift 2
    until "$@" > /dev/null 2>&1; do
        our_pid "$name" > /dev/null || fail_with_logs "$name" "$name exited while waiting for $what"
        ((SECONDS < deadline)) || fail_with_logs "$name" "no $what after ${TIMEOUT}s"
        sleep 0.2
    done
}

# --- the two test nodes -----------------------------------------------------------------------
# Two hosts for multi-node jobs, the same for both clusters: each a network namespace with its own
# address (NET.1, NET.2) on a bridge where this host is NET.254, and its name in /etc/hosts. A
# cluster runs a daemon in each under the node's hostname (its own UTS namespace).
TWO_NODES=(retmask-node1 retmask-node2)
NET=10.77.0 BRIDGE=rmslurm0
HOSTS_MARKER="# retmask local-cluster node"
node_network() {  # the two nodes' namespaces, bridge and names; fails where namespaces cannot be made
    local i node
    ip link show "$BRIDGE" > /dev/null 2>&1 || {
        ip link add "$BRIDGE" type bridge && ip addr add "$NET.254/24" dev "$BRIDGE"; } || return 1
    ip link set "$BRIDGE" up || return 1
    for i in 1 2; do
        node=${TWO_NODES[$((i - 1))]}
        ip netns list | grep -qw "^$node" || ip netns add "$node" || return 1
        if ! ip link show "rmveth$i" > /dev/null 2>&1; then
            ip link add "rmveth$i" type veth peer name eth0 netns "$node" &&
                ip link set "rmveth$i" master "$BRIDGE" && ip link set "rmveth$i" up &&
                ip -n "$node" addr add "$NET.$i/24" dev eth0 && ip -n "$node" link set eth0 up &&
                ip -n "$node" link set lo up || return 1
        fi
        grep -q "^$NET.$i $node " /etc/hosts || echo "$NET.$i $node $HOSTS_MARKER" >> /etc/hosts
    done
}

# --- packages ---------------------------------------------------------------------------------
install_missing() {  # install_missing PACKAGE... : apt-get install those not installed yet
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    command -v apt-get > /dev/null || die "missing packages (${missing[*]}) and no apt-get"
    say "installing ${missing[*]}"
    if declare -F before_install > /dev/null; then before_install; fi   # e.g. debconf answers
    if [ ! -e /usr/sbin/policy-rc.d ]; then   # keep the packages from starting their services
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    {
        apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confold "${missing[@]}"
    } >> "$LOG/apt.log" 2>&1 || fail_with_logs apt "could not install ${missing[*]}"
}

# --- stopping ---------------------------------------------------------------------------------
stop_daemon() {  # stop_daemon NAME WAIT : SIGTERM, SIGKILL after WAIT seconds; prints "NAME(PID)" if it ran
    local name=$1 wait=$2 pid i
    if ! pid=$(our_pid "$name"); then
        rm -f "$PIDS/$name.pid"
        return 0
    fi
    kill -TERM "$pid" 2> /dev/null
    for ((i = 0; i < wait * 10; i++)); do
        proc_start "$pid" > /dev/null || break
        sleep 0.1
    done
    if proc_start "$pid" > /dev/null; then
        say "$name (pid $pid) still running after ${wait}s, sending SIGKILL" >&2
        kill -KILL "$pid" 2> /dev/null
    fi
    rm -f "$PIDS/$name.pid"
    echo "$name($pid)"
}
