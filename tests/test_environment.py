"""The environment stage: what features depend on, read without torch."""
import json
import subprocess
import sys
from pathlib import Path

from pipeline.machine import cpu_description

REPO = Path(__file__).resolve().parents[1]


def test_cpu_description_reads_the_model_and_the_vector_flags_that_pick_kernels():
    cpuinfo = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu sse4_2 avx avx2 fma "
               "avx512f avx512bw amx_tile\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n")
    assert cpu_description(cpuinfo) == {"model": "Intel(R) Xeon(R) Platinum 8480+",
                                        "vector_flags": ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "amx_tile"]}
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm sve\nCPU part\t: 0xd40\n"
    assert cpu_description(arm) == {"model": "0xd40", "vector_flags": ["asimd", "sve"]}


def test_the_stage_writes_the_environment_without_importing_torch(tmp_path):
    script = ("import sys; from stages.environment import environment; print(environment()); "
              "print('torch' in sys.modules, 'torchvision' in sys.modules)")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "ATEN_CPU_CAPABILITY": "avx2"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    summary, imported = out.stdout.splitlines()
    assert imported == "False False" and summary.startswith("environment: torch ")
    written = json.loads((tmp_path / "data/environment.json").read_text())
    assert written["kernel_variables"] == {"ATEN_CPU_CAPABILITY": "avx2"}  # a kernel choice changes the file
    assert {"torch", "torchvision", "numpy", "python", "decoder", "cpu", "gpus"} <= set(written)
