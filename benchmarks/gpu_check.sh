#!/usr/bin/env bash
# The GPU path in one device call, in under 8 minutes (issue 20).
#
# Here, first:   python -m maas.benchmarks.gpu_pack        (writes .gpu/, checks it fits 64 MiB)
# On a device:   the device tool's run, command "bash benchmarks/gpu_check.sh",
#                carry [".gpu"], timeout_s 540; the report comes back from $OUT.
#
# It installs maas from this tree into a scratch folder, unpacks the gRPC client, Triton,
# MiniLM and numpy 1.26 (for Triton's Python backend stubs only), then runs
# maas.benchmarks.gpu_check: export with torch-cuda-bf16 and its gates, MiniLM against
# sentence-transformers' fp32, in-process and served (gRPC) throughput, report.md/json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-report}
SITE=${MAAS_GPU_SITE:-/tmp/maas-gpu}
BUDGET_S=${MAAS_GPU_BUDGET_S:-450}
mkdir -p "$OUT" "$SITE/lib" "$SITE/stub"
started=$(date +%s)
{
  echo "== unpacking .gpu/ into $SITE"
  for required in .gpu/client.tar.xz .gpu/triton.tar.xz .gpu/minilm.tar.xz .gpu/numpy.tar.xz; do
    [ -e "$required" ] || { echo "error: $required is missing: run python -m maas.benchmarks.gpu_pack here first"; exit 2; }
  done
  # maas from this very tree (a wheel made earlier could lag behind it), offline.
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --target "$SITE/lib" . || exit 2
  for pack in client triton minilm; do tar -xJf ".gpu/$pack.tar.xz" -C "$SITE/lib" || exit 2; done
  tar -xJf .gpu/numpy.tar.xz -C "$SITE/stub" || exit 2
  echo "   unpacked in $(( $(date +%s) - started )) s"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  else
    echo "   no nvidia-smi here"
  fi
  # The Python backend stub embeds the system's libpython: say at once if it is not there.
  ldd "$SITE/lib/pytriton/tritonserver/python_backend_stubs/3.12/triton_python_backend_stub" \
    | grep "not found" && echo "   (the served step will say it cannot start the stubs)"
  export PYTHONPATH="$SITE/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 \
    TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
  # $OUT gets the report alone: a device call brings back at most 8 small files.
  timeout "$BUDGET_S" python3 -m maas.benchmarks.gpu_check --out "$OUT" --work "$SITE/work" \
    --reference .gpu/reference.npz --stub-path "$SITE/stub"
  status=$?
  echo "== done in $(( $(date +%s) - started )) s, exit $status"
  exit $status
} 2>&1 | tee "$OUT/log.txt"
