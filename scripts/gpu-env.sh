# Sourced by the GPU scripts (scripts/gpu-check.sh, bench/gpu_configs.sh) on a GPU machine: puts
# the libtorch of $PYTHON's (default python3) torch and the NVRTC found on the machine on
# LD_LIBRARY_PATH, for the binaries of `bash scripts/gpu-check.sh --build`; sets PY.
PY=${PYTHON:-python3}
TORCH_LIB=$($PY -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
NVRTC_LIB=$(dirname "$(find / \( -name 'libnvrtc.so.1[0-9]*' -o -name 'libnvrtc.so' \) -not -path '*/proc/*' 2>/dev/null | grep -v stubs | head -1)")
export LD_LIBRARY_PATH="$TORCH_LIB:$NVRTC_LIB:${LD_LIBRARY_PATH:-}"
