#!/usr/bin/env bash
# Builds the lab image once and reuses it while its recipe is unchanged.
#
#   1. debootstrap --variant=minbase <suite> from the apt mirror this machine
#      already uses, `podman import` -> localhost/facekit-lab-base:<suite>-<hash>
#   2. Containerfile on top -> localhost/facekit-lab:<suite>-<hash>
#   3. tag it localhost/facekit-lab:<suite>, the name scenarios and playbooks use.
#
# The hashes cover everything that shapes an image (this script, the
# Containerfile, mirror, suite, the host's local CA certificates), so an edit
# rebuilds and nothing else does.
# Prints the image name on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
suite=${LAB_SUITE:-bookworm}
repo=localhost/facekit-lab
base_repo=localhost/facekit-lab-base

log() { echo "build-image: $*" >&2; }

# The first deb URI serving "$suite" in the host's apt sources (deb822 or
# one-line format). Using the host's own mirror keeps the build working where
# only that mirror is reachable.
host_mirror() {
    local uri
    uri=$(awk -v suite="$suite" '
        BEGIN { RS = ""; FS = "\n" }          # deb822: one stanza per paragraph
        {
            types = ""; uris = ""; suites = ""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^Types:/)  { types = $i }
                if ($i ~ /^URIs:/)   { uris = $i }
                if ($i ~ /^Suites:/) { suites = $i " " }
            }
            if (types ~ /[ \t]deb([ \t]|$)/ && suites ~ ("[ \t]" suite "[ \t]")) {
                sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit
            }
        }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z $uri ]]; then
        uri=$(awk -v suite="$suite" '$1 == "deb" {
                  i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                  if ($(i + 1) == suite) { print $i; exit } }' \
              /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    fi
    [[ -n $uri ]] || { log "no apt source for '$suite' in /etc/apt; set LAB_MIRROR"; exit 1; }
    echo "$uri"
}

mirror=${LAB_MIRROR:-$(host_mirror)}
local_ca_dir=/usr/local/share/ca-certificates
mapfile -t local_cas < <(find "$local_ca_dir" -name '*.crt' -type f 2>/dev/null | sort)
base_hash=$(printf '%s\n' "$suite" "$mirror" minbase | cat - "$0" | sha256sum | cut -c1-12)
image_hash=$(printf '%s\n' "$base_hash" | cat - "$here/Containerfile" ${local_cas[@]+"${local_cas[@]}"} \
             | sha256sum | cut -c1-12)
base_image=$base_repo:$suite-$base_hash
image=$repo:$suite-$image_hash

"$here/ensure-tools.sh"

# One build at a time on this machine: parallel `make molecule` runs would
# otherwise both debootstrap and race on the tags.
exec 9>/tmp/facekit-lab-build.lock
flock 9

if podman image exists "$image"; then
    log "reusing $image"
else
    start=$SECONDS
    if ! podman image exists "$base_image"; then
        rootfs=$(mktemp -d /var/tmp/facekit-lab-rootfs.XXXXXX)
        trap 'rm -rf "$rootfs"' EXIT
        log "debootstrap --variant=minbase $suite from $mirror"
        if ! debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
            tail -20 "$rootfs.log" >&2
            exit 1
        fi
        rm -f "$rootfs.log"
        tar --numeric-owner --xattrs -C "$rootfs" -c . \
            | podman import --quiet - "$base_image" >/dev/null
        rm -rf "$rootfs"
        trap - EXIT
    fi
    log "building $image"
    context=$(mktemp -d /tmp/facekit-lab-context.XXXXXX)
    trap 'rm -rf "$context"' EXIT
    mkdir "$context/local-ca"
    [[ ${#local_cas[@]} -eq 0 ]] || cp "${local_cas[@]}" "$context/local-ca/"
    # Host networking, like the lab hosts: the mirror is reached as the host
    # reaches it.
    if ! podman build --network host --build-arg "BASE_IMAGE=$base_image" \
            --tag "$image" --file "$here/Containerfile" "$context" >"$context.log" 2>&1; then
        tail -30 "$context.log" >&2
        exit 1
    fi
    rm -rf "$context" "$context.log"
    trap - EXIT
    log "built $image in $((SECONDS - start)) s"
fi
podman tag "$image" "$repo:$suite"
# Drop the images of older recipes (ignore those a container still uses).
podman images --format '{{.Repository}}:{{.Tag}}' \
    | grep -E "^($repo|$base_repo):$suite-" | grep -vxF -e "$image" -e "$base_image" \
    | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$image"
