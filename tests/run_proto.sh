#!/usr/bin/env bash
# Runs the end-to-end tests (pytest) against the daemons in $POSTROOM_BIN;
# PROTO_SUITES narrows it to some directories under tests/ (e.g. proto/smtp).
# pytest's exit 5 (nothing collected) is a failure here, as is any other.
set -u
cd "$(dirname "$0")"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:log_path=/dev/stderr}
# PYTEST_ARGS is split like shell words, so quotes work: PYTEST_ARGS="-k 'a or b'".
eval "args=(${PYTEST_ARGS:-})"
/usr/bin/python3 -m pytest -q -p no:cacheprovider "${args[@]}" ${PROTO_SUITES:-proto}
rc=$?
[ $rc -eq 5 ] && echo "proto: no tests collected" >&2
exit $rc
