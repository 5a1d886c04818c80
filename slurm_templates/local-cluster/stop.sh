#!/usr/bin/env bash
# Stop the single-node SLURM test cluster started by start.sh: cancel all jobs, then stop exactly
# the processes whose PIDs start.sh recorded (SIGTERM, SIGKILL after a bounded wait).
# Idempotent: with nothing running it says so and exits 0. Configs, logs, Slurm state and the
# accounting database stay in place, so the next start.sh is a warm start.
#
# Environment: RETMASK_SLURM_STATE (default /var/lib/retmask-slurm), as for start.sh;
#              RETMASK_SLURM_STOP_WAIT seconds per daemon before SIGKILL (default 15).
set -uo pipefail

STATE=${RETMASK_SLURM_STATE:-/var/lib/retmask-slurm}
WAIT=${RETMASK_SLURM_STOP_WAIT:-15}
PIDS=$STATE/pids
T0=$(date +%s%N)

say() { echo "[retmask-slurm] $*"; }
elapsed() { awk -v a="$T0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1fs", (b - a) / 1e9 }'; }
[ "$(id -u)" = 0 ] || { echo "[retmask-slurm] ERROR: must run as root" >&2; exit 1; }

# Same bookkeeping as start.sh: $PIDS/NAME.pid holds "PID STARTTIME"; a zombie counts as gone.
proc_start() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r -a fields <<< "${stat##*) }"
    [ "${fields[0]}" != Z ] || return 1
    echo "${fields[19]}"
}
our_pid() {
    local pid='' start=''
    [ -r "$PIDS/$1.pid" ] || return 1
    read -r pid start < "$PIDS/$1.pid" || true
    [ -n "$pid" ] && [ -n "$start" ] && [ "$(proc_start "$pid" || true)" = "$start" ] || return 1
    echo "$pid"
}

# Cancel every job first, so that no job step outlives slurmd.
if our_pid slurmctld > /dev/null; then
    jobs=$(timeout 10 squeue -h -o %A 2> /dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2> /dev/null
        for ((i = 0; i < WAIT * 5; i++)); do
            [ -z "$(timeout 10 squeue -h 2> /dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

stopped=()
for name in slurmd slurmctld slurmdbd mariadbd munged; do   # reverse start order
    if ! pid=$(our_pid "$name"); then
        rm -f "$PIDS/$name.pid"
        continue
    fi
    kill -TERM "$pid" 2> /dev/null
    for ((i = 0; i < WAIT * 10; i++)); do
        proc_start "$pid" > /dev/null || break
        sleep 0.1
    done
    if proc_start "$pid" > /dev/null; then
        say "$name (pid $pid) still running after ${WAIT}s, sending SIGKILL"
        kill -KILL "$pid" 2> /dev/null
    fi
    rm -f "$PIDS/$name.pid"
    stopped+=("$name($pid)")
done

if [ ${#stopped[@]} -eq 0 ]; then
    say "not running, nothing to stop ($(elapsed))"
else
    say "stopped ${stopped[*]} in $(elapsed)"
fi
