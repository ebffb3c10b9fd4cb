#!/bin/sh
# vshm-gpu-sandboxed.sh - run vshm-gpu with --sandbox=MODE added, for
# harnesses that start the back-end as `PATH --socket-path=SOCK` (the
# integration tests, tests/e2e/run.py):
#   VSHM_GPU_EXE=build/server/vshm-gpu tests/e2e/run-e2e.sh \
#       --backend tests/unit/server/vshm-gpu-sandboxed.sh
# env: VSHM_GPU_EXE (required), VSHM_SANDBOX_MODE (default on)
if [ -z "$VSHM_GPU_EXE" ]; then
	echo "vshm-gpu-sandboxed.sh: set VSHM_GPU_EXE to the vshm-gpu binary" >&2
	exit 1
fi
exec "$VSHM_GPU_EXE" --sandbox="${VSHM_SANDBOX_MODE:-on}" "$@"
