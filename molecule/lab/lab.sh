#!/usr/bin/env bash
# The local container lab (inventory/lab).
#   lab.sh up     build/reuse the image, serve the stand-ins, start the lab hosts,
#                 run site.yml on them
#   lab.sh hosts  build/reuse the image and start the lab hosts only
#   lab.sh down   remove the lab hosts and stop the stand-in server
#
# The lab cannot reach GitHub, Anaconda or Google's download site, so what the
# roles would download comes from standins.py (a loopback HTTP server started
# here, reachable from the hosts, which share the host's network). Its role
# variables go to .cache/lab/standins.json and are passed with -e @file.
set -euo pipefail

lab=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$lab/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$lab/containers.conf}
export ANSIBLE_CONFIG=${ANSIBLE_CONFIG:-$root/ansible.cfg}
inventory=inventory/lab
state=$root/.cache/lab
standins_vars=$state/standins.json
# The controller venv's Python has PyYAML (standins.py reads the role defaults).
python=$root/.venv/bin/python
[[ -x $python ]] || python=python3

# site.yml is runnable once it and every playbook it imports exist.
site_ready() {
    [[ -f site.yml ]] || return 1
    local playbook
    while read -r playbook; do
        [[ -f $playbook ]] || { echo "lab: $playbook (imported by site.yml) does not exist yet" >&2; return 1; }
    done < <(sed -n 's/^[[:space:]]*ansible\.builtin\.import_playbook:[[:space:]]*//p; s/^[[:space:]]*import_playbook:[[:space:]]*//p' site.yml)
}

hosts_up() {
    "$lab/build-image.sh" >/dev/null
    ansible-playbook -i "$inventory" playbooks/lab_up.yml
}

standins_up() {
    mkdir -p "$state"
    # standins.py's default protoc release fits the role's venv pins (protobuf 6.33.x).
    "$python" "$lab/standins.py" serve --dir "$state/standins" --background --check-pin \
        >"$standins_vars.tmp"
    mv "$standins_vars.tmp" "$standins_vars"
    echo "lab: stand-ins served; role variables in ${standins_vars#"$root"/}"
}

case ${1:-} in
    up)
        hosts_up
        if site_ready; then
            standins_up
            ansible-playbook -i "$inventory" -e "@$standins_vars" site.yml
        else
            echo "lab: hosts are up; site.yml is not ready, so not running: ansible-playbook -i $inventory site.yml"
        fi
        ;;
    hosts)
        hosts_up
        ;;
    down)
        ansible-playbook -i "$inventory" playbooks/lab_down.yml
        if [[ -d $state/standins ]]; then
            "$python" "$lab/standins.py" stop --dir "$state/standins" >/dev/null
        fi
        ;;
    *)
        echo "usage: $0 up|hosts|down" >&2
        exit 2
        ;;
esac
