#!/usr/bin/env bash
# The local container lab (inventory/lab).
#   lab.sh up     build/reuse the image, start the lab hosts, run site.yml on them
#   lab.sh hosts  build/reuse the image and start the lab hosts only
#   lab.sh down   remove the lab hosts
set -euo pipefail

lab=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$lab/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$lab/containers.conf}
export ANSIBLE_CONFIG=${ANSIBLE_CONFIG:-$root/ansible.cfg}
inventory=inventory/lab

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

case ${1:-} in
    up)
        hosts_up
        if site_ready; then
            ansible-playbook -i "$inventory" site.yml
        else
            echo "lab: hosts are up; site.yml is not ready, so not running: ansible-playbook -i $inventory site.yml"
        fi
        ;;
    hosts)
        hosts_up
        ;;
    down)
        ansible-playbook -i "$inventory" playbooks/lab_down.yml
        ;;
    *)
        echo "usage: $0 up|hosts|down" >&2
        exit 2
        ;;
esac
