"""Device check (GPU machine): does RLIMIT_DATA, the trainers' hard memory limit, leave CUDA working?

    python3 scripts/cuda_data_limit.py      # writes $OUT/cuda_data_limit.json

Runs a child with RLIMIT_DATA of 4 GiB and one without: torch's CUDA start-up, 10 GB on the GPU, a matrix
product, 0.4 GB and 8 GB on the host (the second must be refused under the limit) and 1 GB of pinned memory.
If all but the 8 GB host allocation work under the limit, `TrainerLimits.data_limit` can be on for the GPU
engines too (Warp, which mjlab uses, is not covered: its wheel is too large to carry to the device machine).
"""
import json
import os
import resource
import subprocess
import sys

out = {}
child = r'''
import json, resource, sys, time
res = {}
t = time.time()
import torch
res["import_s"] = round(time.time() - t, 2)
try:
    x = torch.ones(int(2.5e9), device="cuda")  # 10 GB on the GPU
    y = (x * 2).sum().item()
    a = torch.randn(8192, 8192, device="cuda"); b = (a @ a).sum().item()
    res["gpu_10GB_and_matmul"] = "ok"
except Exception as e:
    res["gpu_10GB_and_matmul"] = f"{type(e).__name__}: {str(e)[:200]}"
try:
    h = torch.ones(int(1e8))  # 0.4 GB on the host
    res["host_0.4GB"] = "ok"
except Exception as e:
    res["host_0.4GB"] = f"{type(e).__name__}: {str(e)[:200]}"
try:
    h = torch.ones(int(2e9))  # 8 GB on the host: beyond the limit
    res["host_8GB"] = "allocated (limit not effective)"
except Exception as e:
    res["host_8GB"] = f"refused: {type(e).__name__}"
try:
    p = torch.ones(int(2.5e8)).pin_memory()  # 1 GB pinned
    res["pinned_1GB"] = "ok"
except Exception as e:
    res["pinned_1GB"] = f"{type(e).__name__}: {str(e)[:200]}"
s = open("/proc/self/status").read()
res["VmData_kB"] = [l for l in s.splitlines() if l.startswith("VmData")][0]
res["VmSize_kB"] = [l for l in s.splitlines() if l.startswith("VmSize")][0]
print(json.dumps(res))
'''
for limit_gb in (4, None):
    def pre(limit_gb=limit_gb):
        if limit_gb:
            resource.setrlimit(resource.RLIMIT_DATA, (limit_gb << 30, limit_gb << 30))
    p = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, preexec_fn=pre, timeout=240)
    out[f"rlimit_data_{limit_gb}GB"] = {"rc": p.returncode, "stdout": p.stdout[-2000:], "stderr": p.stderr[-1500:]}
    print(json.dumps(out[f"rlimit_data_{limit_gb}GB"]), flush=True)
os.makedirs(os.environ.get("OUT", "/tmp"), exist_ok=True)
with open(os.path.join(os.environ.get("OUT", "/tmp"), "cuda_data_limit.json"), "w") as f:
    json.dump(out, f, indent=2)
