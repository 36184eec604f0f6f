#!/usr/bin/env bash
# Builds the registry's container image (config/Dockerfile) from a built berth binary:
#   scripts/image.sh [BINARY] [TAG]      (defaults: target/release/berth, berth:latest)
# Stages the binary, the shared libraries it links (as ldd lists them), the CA certificates,
# a passwd/group with the user berth (10001) and an empty /var/lib/berth (store/), then runs
# `docker build` on that directory. DOCKER (default `docker`) names the docker command.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/berth}
tag=${2:-berth:latest}
docker=${DOCKER:-docker}
[ -x "$binary" ] || { echo "image.sh: $binary is not an executable (cargo build --release)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
install -D -m 0755 "$binary" "$root/usr/bin/berth"
# Debug information has no use in the image (a debug build carries tens of megabytes of it).
if command -v strip >/dev/null; then strip --strip-debug "$root/usr/bin/berth"; fi
# The dynamic loader and every library, at the paths the binary asks for them.
ldd "$binary" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
  install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$root/etc" "$root/tmp" "$root/etc/berth" "$stage/store"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/:/sbin/nologin\nberth:x:10001:10001:berth:/var/lib/berth:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nberth:x:10001:\n' >"$root/etc/group"
cp config/Dockerfile "$stage/Dockerfile"
"$docker" build -q -t "$tag" "$stage"
