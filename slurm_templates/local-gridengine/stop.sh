#!/usr/bin/env bash
# Stop the Grid Engine test cluster started by start.sh: delete all jobs, then stop exactly the
# processes whose PIDs start.sh recorded (SIGTERM, SIGKILL after a bounded wait), the execds first. Job processes (sge_shepherd and below) that outlive a deletion are killed with their execd.
# Idempotent: with nothing running it says so and exits 0. Cell files, logs, the spool and the
# accounting file stay in place, so the next start.sh is a warm start (job ids continue).
#
# Environment: RETMASK_GE_STATE (default /var/lib/retmask-gridengine), as for start.sh;
#              RETMASK_GE_STOP_WAIT seconds per step before forcing it (default 15).
set -uo pipefail

STATE=${RETMASK_GE_STATE:-/var/lib/retmask-gridengine}
WAIT=${RETMASK_GE_STOP_WAIT:-15}
PIDS=$STATE/pids
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
unset SGE_QMASTER_PORT SGE_EXECD_PORT
T0=$(date +%s%N)

TAG=retmask-ge
# shellcheck source=../local-daemons.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local-daemons.sh"
[ "$(id -u)" = 0 ] || die "must run as root"

descendants() {  # descendants PID -> "PID STARTTIME" of every process below PID
    local queue=("$1") p c
    while [ ${#queue[@]} -gt 0 ]; do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        for c in $(ps -o pid= --ppid "$p" 2> /dev/null); do
            echo "$c $(proc_start "$c" || true)"
            queue+=("$c")
        done
    done
}
jobs_left() { [ -n "$(timeout 10 qstat -u '*' 2> /dev/null)" ]; }

# Delete every job first (all users), so that no job outlives the execd.
if our_pid qmaster > /dev/null && jobs_left; then
    say "deleting all jobs: $(timeout 10 qstat -u '*' 2> /dev/null | awk 'NR > 2 { print $1 }' | sort -un | tr '\n' ' ')"
    timeout 10 qdel -u '*' > /dev/null 2>&1
    for ((i = 0; i < WAIT * 5; i++)); do
        jobs_left || break
        sleep 0.2
        # a running job whose execd is gone would stay in state "dr": force its deletion
        ((i == WAIT * 5 / 2)) && timeout 10 qdel -f -u '*' > /dev/null 2>&1
    done
    jobs_left && say "jobs still listed after ${WAIT}s; stopping anyway"
fi

EXECDS=("execd-${TWO_NODES[1]}" "execd-${TWO_NODES[0]}" execd)   # the two test nodes' and this host's
# Job processes still under our execds (normally none after the deletion above).
leftover=()
for name in "${EXECDS[@]}"; do
    if pid=$(our_pid "$name"); then
        mapfile -t -O "${#leftover[@]}" leftover < <(descendants "$pid")
    fi
done

stopped=()
for name in "${EXECDS[@]}" qmaster; do   # reverse start order
    ran=$(stop_daemon "$name" "$WAIT") && [ -n "$ran" ] && stopped+=("$ran")
done

killed=()
for entry in "${leftover[@]}"; do
    read -r pid start <<< "$entry"
    [ -n "$start" ] && [ "$(proc_start "$pid" || true)" = "$start" ] || continue
    kill -KILL "$pid" 2> /dev/null && killed+=("$pid")
done
[ ${#killed[@]} -eq 0 ] || say "killed leftover job processes: ${killed[*]}"

if [ ${#stopped[@]} -eq 0 ]; then
    say "not running, nothing to stop ($(elapsed))"
else
    say "stopped ${stopped[*]} in $(elapsed)"
fi
