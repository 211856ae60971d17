"""JAX's process-wide settings for the bayes engine: made once, documented, and optional.

JAX keeps three settings per process that the bayes engine depends on:

- ``jax_enable_x64``: float64 arithmetic. Sampling runs in float64 unless
  ``BayesEngine(float64=False)``.
- ``jax_num_cpu_devices``: how many XLA devices the CPU shows. One per chain
  lets the chains run side by side; it can only be set before JAX first runs.
- ``jax_compilation_cache_dir``: where compiled programs are kept between
  processes (it saves seconds in every run).

At the first Bayesian fit of a process misterp sets them, once: x64 to that
fit's precision; the CPU devices to max(chains, cores), unless they were
already chosen (in JAX's config, or by ``host_platform_device_count`` in
``XLA_FLAGS``) or JAX has started; and the cache folder to
``$MISTERP_JAX_CACHE``, or ``~/.cache/misterp/jax`` (an empty value: no
cache). It never changes them afterwards: a later fit that needs the other
precision is refused with a message that says why.

To manage JAX yourself, set ``MISTERP_CONFIGURE_JAX=0`` in the environment,
or call :func:`leave_jax_alone` before the first fit. misterp then changes
nothing and only checks that x64 matches the precision a fit asks for.
"""

from __future__ import annotations

import os

from ..errors import MisterpInputError

_state = {"configured": False, "hands_off": False}


def leave_jax_alone() -> None:
    """Opt out: misterp will not change any of JAX's settings in this process."""
    _state["hands_off"] = True


def _hands_off() -> bool:
    return _state["hands_off"] or os.environ.get("MISTERP_CONFIGURE_JAX", "1").strip().lower() in (
        "0", "false", "no", "off")


def cache_dir() -> str:
    """The compilation cache folder misterp uses ("" for none)."""
    return os.environ.get("MISTERP_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "misterp", "jax"))


def ensure_jax(float64: bool, chains: int) -> None:
    """Make the settings at the first call (unless opted out); check the precision at every call."""
    import jax

    if not _state["configured"] and not _hands_off():
        chosen = jax.config.jax_num_cpu_devices != -1 or "host_platform_device_count" in os.environ.get(
            "XLA_FLAGS", "")
        if not chosen:
            try:
                jax.config.update("jax_num_cpu_devices", max(chains, os.cpu_count() or 1))
            except RuntimeError:  # JAX already started: chain_method="auto" runs the chains in turn
                pass
        jax.config.update("jax_enable_x64", float64)
        if cache_dir():
            jax.config.update("jax_compilation_cache_dir", cache_dir())
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _state["configured"] = True
    if bool(jax.config.jax_enable_x64) != float64:
        have, want = ("float64", "float32") if jax.config.jax_enable_x64 else ("float32", "float64")
        raise MisterpInputError(
            f"JAX runs this process in {have} (jax_enable_x64 is process-wide, set at the first Bayesian fit "
            f"or by you), and this fit asks for {want} (float64={float64}). misterp does not change JAX's "
            f"settings once made: run this fit in a new process, or set jax_enable_x64 yourself before any "
            "fit (with MISTERP_CONFIGURE_JAX=0 or leave_jax_alone()); from the command line, "
            f"JAX_ENABLE_X64={int(float64)} in the environment does it."
        )
