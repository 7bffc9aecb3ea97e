#!/usr/bin/env bash
# Runs `molecule test` for one scenario (argument) or for every
# molecule/*/molecule.yml (alphabetical, `site` last), after making sure the
# container tools and the lab image exist. Prints PASS/FAIL/SKIP and the time
# of each scenario, then a summary line; exits 1 if any scenario failed.
#
# A scenario that needs the outside world lists URLs in its `requires-url`
# file (one per line, # comments); if one is unreachable it is skipped, not
# failed, so CI on a closed network stays meaningful.
#
# A scenario whose training host runs the seeds' stack (Python 3.6 + TensorFlow
# 1.7.1) has a `requires-python36` file: the Python 3.6 that
# tools/find-python36.sh finds is bind-mounted read-only into its containers at
# the same path (FACEKIT_PY36_PREFIX); without one the scenario is skipped.
#
# A scenario with a `light` file (little CPU: no training) runs in the background beside the
# others when every scenario runs, so that the suite's wall time is not the plain sum on 2 cores;
# its log is printed when it ends. Light scenarios must not share container names or ports with
# the others.
set -euo pipefail

lab=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$lab/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$lab/containers.conf}
export ANSIBLE_CONFIG=${ANSIBLE_CONFIG:-$root/ansible.cfg}

if [[ $# -gt 1 ]]; then
    echo "usage: $0 [SCENARIO]" >&2
    exit 2
fi

scenarios=()
if [[ -n ${1:-} ]]; then
    if [[ ! -f molecule/$1/molecule.yml ]]; then
        echo "run-scenarios: no scenario '$1' (molecule/$1/molecule.yml does not exist)" >&2
        exit 2
    fi
    scenarios=("$1")
else
    for file in molecule/*/molecule.yml; do
        [[ -e $file ]] || continue
        name=$(basename "$(dirname "$file")")
        [[ $name == site ]] || scenarios+=("$name")
    done
    [[ ! -f molecule/site/molecule.yml ]] || scenarios+=(site)
fi
if [[ ${#scenarios[@]} -eq 0 ]]; then
    echo "run-scenarios: no scenarios under molecule/"
    echo "0 passed, 0 failed, 0 skipped"
    exit 0
fi

"$lab/build-image.sh" >/dev/null

# The seeds' Python 3.6 for the scenarios that need it (see requires-python36).
if py36=$("$root/tools/find-python36.sh"); then
    export FACEKIT_PY36="$py36"
    FACEKIT_PY36_PREFIX=$(dirname "$(dirname "$py36")")
    export FACEKIT_PY36_PREFIX
fi

# Prints the first URL of the scenario's requires-url that cannot be fetched.
unreachable_url() {
    local file=molecule/$1/requires-url url
    [[ -f $file ]] || return 0
    while read -r url; do
        url=${url%%#*}
        url=${url//[[:space:]]/}
        [[ -n $url ]] || continue
        # A one-byte range GET: some download hosts refuse HEAD.
        if ! curl --silent --fail --location --output /dev/null --range 0-0 \
                --connect-timeout 5 --max-time 15 "$url"; then
            echo "$url"
            return 0
        fi
    done <"$file"
}

passed=0 failed=0 skipped=0
results=()

# Prints why scenario $1 is skipped, or nothing when it can run.
skip_reason() {
    local url
    if [[ -f molecule/$1/requires-python36 && -z ${FACEKIT_PY36:-} ]]; then
        echo "no Python 3.6 on this machine for the training host's TensorFlow 1.7.1 (set PYTHON36=/path/to/python3.6, or \`pyenv install 3.6.15\`)"
        return 0
    fi
    url=$(unreachable_url "$1")
    [[ -z $url ]] || echo "$url is not reachable from this machine"
}

# Light scenarios in the background (only when all run: one named scenario runs in front).
background=()
if [[ -z ${1:-} ]]; then
    foreground=()
    for name in "${scenarios[@]}"; do
        if [[ -f molecule/$name/light && -z $(skip_reason "$name") ]]; then
            log=$(mktemp "/tmp/facekit-molecule-$name.XXXXXX.log")
            echo "=== molecule test -s $name (in the background beside the others; log: $log)"
            (
                start=$SECONDS
                if flock "/tmp/facekit-molecule-$name.lock" molecule test -s "$name" >"$log" 2>&1; then
                    verdict=PASS
                else
                    verdict=FAIL
                fi
                printf '%s  %s (%d s, in the background)\n' "$verdict" "$name" $((SECONDS - start)) >"$log.verdict"
            ) &
            background+=("$name:$!:$log")
        else
            foreground+=("$name")
        fi
    done
    scenarios=("${foreground[@]}")
fi

for name in "${scenarios[@]}"; do
    reason=$(skip_reason "$name")
    if [[ -n $reason ]]; then
        echo "SKIP $name: $reason"
        results+=("SKIP  $name")
        skipped=$((skipped + 1))
        continue
    fi
    echo "=== molecule test -s $name"
    start=$SECONDS
    # Scenario containers are named after the scenario: two runs of the same
    # scenario on this machine (two engineers, one checkout) take turns.
    if flock "/tmp/facekit-molecule-$name.lock" molecule test -s "$name"; then
        verdict=PASS
        passed=$((passed + 1))
    else
        verdict=FAIL
        failed=$((failed + 1))
    fi
    line=$(printf '%s  %s (%d s)' "$verdict" "$name" $((SECONDS - start)))
    echo "$line"
    results+=("$line")
done

for entry in "${background[@]}"; do
    IFS=: read -r name pid log <<<"$entry"
    wait "$pid" || true
    echo "=== molecule test -s $name (ran in the background)"
    cat "$log"
    line=$(cat "$log.verdict" 2>/dev/null || echo "FAIL  $name (no verdict)")
    echo "$line"
    results+=("$line")
    if [[ $line == PASS* ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    rm -f "$log" "$log.verdict"
done

echo
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
