#!/usr/bin/env bash
# Installs what berth's tests need on a fresh Debian machine, then runs every test.
# Nothing is skipped: a test whose peer is missing fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests talk to (README.md, Test).
DEBIAN_PACKAGES=(
  busybox-static docker.io podman skopeo containerd docker-registry runc crun umoci
  nginx wrk hyperfine apache2-utils iproute2 iptables tmux curl libseccomp-dev
  chromium chromium-driver systemd binutils
  uidmap passt fuse-overlayfs
)
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# npm comes with the machine's Node.js where there is one (Debian's npm package conflicts with
# a Node.js installed from elsewhere, such as NodeSource's); Debian's otherwise.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# moto's S3 server (PyPI); 5.2.5 or later answers CompleteMultipartUpload as the SDK expects.
python3 -c 'import moto, sys; from importlib.metadata import version; sys.exit(tuple(map(int, version("moto").split(".")[:3])) < (5, 2, 5))' 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check 'moto[server]==5.2.5'

# axe-core (npm), the accessibility check the web page's browser test runs in Chromium.
AXE_PREFIX=/usr/local/lib/berth-test
[ -f "$AXE_PREFIX/node_modules/axe-core/axe.min.js" ] \
  || npm install --silent --no-audit --no-fund --prefix "$AXE_PREFIX" axe-core@4.10.3

cargo build --workspace --all-targets
log=$(mktemp)
# A hang must end as a failure that names the test, well inside CI's 90 minutes (which the
# build shares): the tests get BERTH_TEST_MINUTES (60), then stop, and the ones still running
# are named (libtest says which have run for over 60 seconds; those without a result since).
# One command a test runs hangs for 5 minutes at most (tests/util.rs); this is the backstop.
minutes=${BERTH_TEST_MINUTES:-60}
set +e
timeout --kill-after=30 "${minutes}m" cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "the tests were stopped after ${minutes} minutes; still running then (over 60 s each):"
  awk '$1 == "test" && / has been running for over 60 seconds$/ { running[$2] = 1 }
       $1 == "test" && $3 == "..." { delete running[$2] }
       END { for (t in running) print "  " t }' "$log"
fi
# One closing line for the whole run: cargo ends on its (empty) doc-test summaries.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$rc"
