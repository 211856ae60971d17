"""JAX's process-wide settings: made once at the first Bayesian fit, never changed after, and optional."""

import subprocess
import sys

import pytest

SCRIPT = """
import warnings, jax, pandas as pd
from misterp import MisterpInputError, MisterpWarning, Survey, prepare
from misterp.engines.bayes import BayesEngine
{before}
data = pd.DataFrame({{"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5}})
cells, _ = prepare(Survey(data, "y"), None, "y ~ (1|g)")
warnings.simplefilter("ignore", MisterpWarning)
quick = dict(chains=2, warmup=100, draws=100, seed=1, progress=False)  # the engine's doctest: one program
BayesEngine(**quick).fit(cells)
print("x64", jax.config.jax_enable_x64, "devices", jax.local_device_count(),
      "cache", jax.config.jax_compilation_cache_dir)
try:
    BayesEngine(float64=False, **quick).fit(cells)
    print("float32 ran")
except MisterpInputError as e:
    print("refused:", e)
print("x64", jax.config.jax_enable_x64)
"""


def run(before="", env=None):
    import os

    environment = {**os.environ, **(env or {})}  # the suite's compilation cache: the doctest's sampler
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(before=before)], capture_output=True, text=True,
                         env=environment, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_settings_are_made_once_and_never_changed_silently():
    out = run()
    first, refusal, last = out.strip().splitlines()
    import os

    assert first.startswith(f"x64 True devices {max(2, os.cpu_count())} ")  # one per chain, at least the cores
    assert refusal.startswith("refused: JAX runs this process in float64") and "new process" in refusal
    assert last == "x64 True"


@pytest.mark.slow  # a fresh process compiling a sampler without the cache: 15 s
def test_opting_out_leaves_jax_as_the_user_set_it():
    out = run(env={"MISTERP_CONFIGURE_JAX": "0"},
              before="jax.config.update('jax_enable_x64', True); jax.config.update('jax_num_cpu_devices', 1)")
    first, _, last = out.strip().splitlines()
    assert first.startswith("x64 True devices 1 cache None")
    assert last == "x64 True"



def test_opted_out_precision_is_checked_not_changed():
    code = ("import jax; from misterp.engines.jax_config import ensure_jax, leave_jax_alone; leave_jax_alone()\n"
            "try:\n    ensure_jax(True, 2)\nexcept ValueError as e:\n    print(e)\n"
            "print('x64', jax.config.jax_enable_x64, 'devices', jax.config.jax_num_cpu_devices)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("JAX runs this process in float32") and "leave_jax_alone()" in out
    assert out.strip().endswith("x64 False devices -1")
