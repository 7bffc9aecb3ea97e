#!/usr/bin/env bash
# The local container lab (inventory/lab).
#   lab.sh up     build/reuse the image, serve the stand-ins, start the lab hosts and a software
#                 Vision Bonnet per kit, run site.yml on them, print a summary
#                 (LAB_KITS=N: N kits instead of inventory/lab's 2)
#   lab.sh hosts  build/reuse the image and start the lab hosts only
#   lab.sh down   remove the lab hosts and stop the stand-in server
#
# The lab's training host runs the seeds' stack (Python 3.6 + TensorFlow 1.7.1): this machine's
# Python 3.6 (tools/find-python36.sh) is bind-mounted into its container. What the roles would
# download from sites the lab cannot reach comes from standins.py, a loopback HTTP server started
# here and reachable from the hosts (they share the host's network); its role variables go to
# .cache/lab/standins/role_vars.json and are passed with -e @file.
set -euo pipefail

lab=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$lab/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$lab/containers.conf}
export ANSIBLE_CONFIG=${ANSIBLE_CONFIG:-$root/ansible.cfg}
state=$root/.cache/lab
standins=$state/standins
# inventory/lab has two kits; LAB_KITS=N adds facekit-lab-kit3..N in a second inventory file.
inventory=(-i inventory/lab)
kits=${LAB_KITS:-2}
if ! [[ $kits =~ ^[0-9]+$ ]] || ((kits < 2 || kits > 50)); then
    echo "lab: LAB_KITS=$kits: give a number of kits from 2 (inventory/lab's) to 50" >&2
    exit 2
fi
extra_kits() {
    mkdir -p "$state"
    {
        echo "# Written by molecule/lab/lab.sh for LAB_KITS=$kits: kits beyond inventory/lab's two."
        echo "vision_kits:"
        echo "  hosts:"
        for ((n = 3; n <= kits; n++)); do echo "    facekit-lab-kit$n: {}"; done
    } >"$state/extra_kits.yml"
}
if ((kits > 2)); then
    extra_kits
    inventory+=(-i "$state/extra_kits.yml")
fi
# The controller venv's Python has PyYAML, numpy and Pillow (standins.py needs them).
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

find_python36() {
    if ! FACEKIT_PY36=$("$root/tools/find-python36.sh"); then
        echo "lab: stopping before the training host: it runs TensorFlow 1.7.1, which needs Python 3.6, and this machine has none; build one with pyenv (\`pyenv install 3.6.15\`) or set PYTHON36=/path/to/python3.6, then run make lab again." >&2
        exit 1
    fi
    export FACEKIT_PY36
    FACEKIT_PY36_PREFIX=$(dirname "$(dirname "$FACEKIT_PY36")")
    export FACEKIT_PY36_PREFIX
}

hosts_up() {
    "$lab/build-image.sh" >/dev/null
    ansible-playbook "${inventory[@]}" playbooks/lab_up.yml
}

bonnets() {
    ansible-playbook "${inventory[@]}" -e "bonnet_state=$1" "$lab/bonnets.yml"
}

standins_up() {
    mkdir -p "$state"
    "$python" "$lab/standins.py" serve --dir "$standins" --background --check-pin \
        --python36 "$FACEKIT_PY36" >/dev/null
    echo "lab: stand-ins served; role variables in ${standins#"$root"/}/role_vars.json"
}

case ${1:-} in
    up)
        find_python36
        hosts_up
        if site_ready; then
            standins_up
            bonnets started
            start=$SECONDS
            ansible-playbook "${inventory[@]}" -e "@$standins/role_vars.json" site.yml
            "$python" "$lab/summary.py" --standins "$standins" --seconds $((SECONDS - start)) \
                --kits "$(ansible-inventory "${inventory[@]}" --graph vision_kits | sed -n 's/^.*--//p' | paste -sd, -)"
        else
            echo "lab: hosts are up; site.yml is not ready, so not running: ansible-playbook ${inventory[*]} site.yml"
        fi
        ;;
    hosts)
        find_python36
        hosts_up
        ;;
    down)
        # Every kit a LAB_KITS run may have added, whatever LAB_KITS says now.
        if [[ -f $state/extra_kits.yml && $kits -le 2 ]]; then
            inventory+=(-i "$state/extra_kits.yml")
        fi
        bonnets stopped
        ansible-playbook "${inventory[@]}" playbooks/lab_down.yml
        if [[ -d $standins ]]; then
            "$python" "$lab/standins.py" stop --dir "$standins" >/dev/null
        fi
        ;;
    *)
        echo "usage: $0 up|hosts|down" >&2
        exit 2
        ;;
esac
