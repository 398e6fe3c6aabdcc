#!/usr/bin/env bash
# Runs every test: installs what is missing (Docker, busybox-static, skopeo, Debian's awscli v2), starts dockerd, builds
# the test image and the solution, runs the unit and end-to-end tests, and ends with one line
# "N passed, N failed[, N skipped]". Under CI=true no test that needs Docker or a client may skip.
set -uo pipefail
cd "$(dirname "$0")"
. eng/scripts/prereqs.sh
set -e
# Pass CI through to the test processes even when it was set but not exported.
export CI="${CI:-}"

[ -x /bin/busybox ] || berth_apt_install busybox-static
berth_need_cmd skopeo skopeo
berth_need_cmd curl curl
# AWS CLI v2 for `aws logs tail` (Debian's awscli package, /usr/bin/aws); the tests' `aws` stays the one on PATH.
[ -x /usr/bin/aws ] || berth_apt_install awscli
berth_ensure_docker
tests/fixtures/build-test-image.sh

berth_log "building (Release)"
dotnet build -c Release Berth.slnx -nologo -v quiet -clp:ErrorsOnly
set +e

passed=0 failed=0 skipped=0 status=0
for project in tests/Berth.UnitTests tests/Berth.EndToEnd; do
    berth_log "testing $project"
    log=$(mktemp)
    dotnet test --project "$project" -c Release --no-build 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    # Microsoft.Testing.Platform's closing summary: "total: N", "failed: N", "succeeded: N", "skipped: N".
    total=$(grep -E '^\s*total: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    if [ -z "$total" ]; then
        echo "$project: no test summary (the test host failed to start?)" >&2
        failed=$((failed + 1))
        status=1
    else
        passed=$((passed + $(grep -E '^\s*succeeded: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')))
        failed=$((failed + $(grep -E '^\s*failed: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')))
        skipped=$((skipped + $(grep -E '^\s*skipped: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')))
    fi
    [ "$rc" = 0 ] || status=1
    rm -f "$log"
done

summary="$passed passed, $failed failed"
[ "$skipped" = 0 ] || summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" = 0 ] && [ "$status" = 0 ]
