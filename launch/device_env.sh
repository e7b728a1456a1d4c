# Sourced by the launch/gpu_*.sh scripts: installs the wheels carried in .whl/ (the device
# image lacks ml_collections) into /tmp/site and puts it and the repository on PYTHONPATH.
py=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$(pwd):${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
