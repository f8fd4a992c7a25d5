"""Running sweeps and evaluations on a Ray cluster, one task per hook group.

A layer above :mod:`pseval.evals` and :mod:`pseval.sweep`: the core never imports it, and this package only
imports Ray inside its functions, so ``import pseval.distributed`` works without Ray installed (its
functions then raise a one-line :class:`pseval.errors.ConfigError`).

- :func:`pseval.distributed.sweep.run_sweep_ray`: ``pseval sweep --executor ray``
- :func:`pseval.distributed.evaluate.evaluate_ray`: ``pseval eval --executor ray``
- :class:`pseval.distributed.cluster.RayOptions`: the cluster address and what each task reserves
"""

from pseval.distributed.cluster import RayOptions

__all__ = ["RayOptions"]
