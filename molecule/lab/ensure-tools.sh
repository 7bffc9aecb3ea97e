#!/usr/bin/env bash
# Installs the container tools the lab needs, only those that are missing.
# Quiet and idempotent: a second run costs a few dpkg queries and prints nothing.
set -euo pipefail

# runc: crun rejects this machine's hybrid cgroup layout (see containers.conf).
# conmon: podman's container monitor. debootstrap builds the base image
# from the apt mirror. curl checks a scenario's requires-url file.
# slirp4netns: only for scenarios that opt out of host networking (README).
packages=(podman runc conmon debootstrap curl slirp4netns)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "ensure-tools: missing ${missing[*]}; run as root or install them with apt-get" >&2
    exit 1
fi

echo "ensure-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# An empty package index (fresh machine) makes apt-get install fail: refresh first.
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/facekit-ensure-tools.log 2>&1; then
    apt-get update -qq >>/tmp/facekit-ensure-tools.log 2>&1
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/facekit-ensure-tools.log 2>&1 || {
        cat /tmp/facekit-ensure-tools.log >&2
        exit 1
    }
fi
