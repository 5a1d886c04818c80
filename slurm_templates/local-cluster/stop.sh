#!/usr/bin/env bash
# Stop the SLURM test cluster started by start.sh: cancel all jobs, then stop exactly
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

TAG=retmask-slurm
# shellcheck source=../local-daemons.sh
source "$(dirname "${BASH_SOURCE[0]}")/../local-daemons.sh"
[ "$(id -u)" = 0 ] || die "must run as root"

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
for name in slurmd-retmask-node2 slurmd-retmask-node1 slurmd slurmctld slurmdbd mariadbd munged; do   # reverse start order
    ran=$(stop_daemon "$name" "$WAIT") && [ -n "$ran" ] && stopped+=("$ran")
done

if [ ${#stopped[@]} -eq 0 ]; then
    say "not running, nothing to stop ($(elapsed))"
else
    say "stopped ${stopped[*]} in $(elapsed)"
fi
