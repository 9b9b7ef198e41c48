"""Train on Ray (``USE_RAY=1``), on CPUs or GPUs, with custom templates registered in every worker.

LLaMA-Factory 0.9.5's own Ray driver (``tuner._ray_training_function``) cannot serve here: it makes one
placement-group bundle of 10 CPUs (plus one GPU) per device in the cluster and asks 10 CPUs per worker, so on a
CPU-only cluster (where the "devices" are the CPUs) the group can never be placed and the run waits forever, and on
GPU nodes with fewer than 10 CPUs per GPU likewise; and its workers import only LLaMA-Factory, so a custom template
is unknown there. This driver keeps what LLaMA-Factory does per worker (its ``Worker``: device set-up, then its
``_training_function``; the ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` hand-off and the bundle order of
its ``sort_placement_group_by_node_ip``) and changes three things:

- one bundle per worker (``ray_num_workers``) of ``resources_per_worker`` (our key, a mapping like LLaMA-Factory's
  older Ray Train key: default ``{"CPU": 1}``, plus ``{"GPU": 1}`` when the driver sees a GPU);
- each worker registers the config's custom templates before training: their validated definitions travel with
  the task, so worker nodes need lf-reasoning installed (as Ray needs one environment everywhere) but no copy of
  the template files;
- the head node's address comes from ``ray.nodes()``, not from the dashboard's state API (absent without
  ``ray[default]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.custom_template import CustomTemplate, register

RESOURCES_KEY = "resources_per_worker"


def worker_resources(value: Any, *, gpu: bool) -> dict[str, float]:
    """``resources_per_worker`` as a mapping of Ray resource names to amounts (a JSON string is accepted)."""
    if value is None:
        return {"CPU": 1, **({"GPU": 1} if gpu else {})}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if (
        not isinstance(value, Mapping)
        or not value
        or not all(isinstance(k, str) and isinstance(v, int | float) and v >= 0 for k, v in value.items())
    ):
        raise UserError(
            f"key '{RESOURCES_KEY}': a mapping of Ray resources to amounts, e.g. "
            f'{RESOURCES_KEY}=\'{{"CPU": 4, "GPU": 1}}\''
        )
    return {str(k): v for k, v in value.items()}


def _worker_class() -> Any:
    """LLaMA-Factory's Ray ``Worker`` with a method that registers the templates first (imported lazily: Ray)."""
    from llamafactory.train.tuner import Worker

    class TemplateWorker(Worker):
        def train(self, config: dict[str, Any], templates: Sequence[CustomTemplate]) -> None:
            for template in templates:
                register(template)
            self._training_function(config)

    return TemplateWorker


def _head_node_ip(ray: Any) -> str:
    """The head node's address from the GCS (LLaMA-Factory's ``get_ray_head_node_ip`` asks the dashboard's state
    API, which the plain ``ray`` package does not run)."""
    heads = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"]]
    return heads[0] if heads else ray.util.get_node_ip_address()


def run_on_ray(args: dict[str, Any], templates: Sequence[CustomTemplate]) -> None:
    """Train ``args`` (LLaMA-Factory keys plus ``resources_per_worker``) on ``ray_num_workers`` Ray workers."""
    try:
        import ray
    except ImportError:
        raise UserError("USE_RAY=1 needs Ray: pip install 'lf-reasoning[ray]'") from None
    from llamafactory.extras.misc import find_available_port, get_device_name
    from llamafactory.hparams import get_ray_args
    from llamafactory.train.trainer_utils import sort_placement_group_by_node_ip
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    args = dict(args)
    resources = worker_resources(args.pop(RESOURCES_KEY, None), gpu=get_device_name() == "gpu")
    ray_args = get_ray_args(args)
    workers_wanted = ray_args.ray_num_workers
    if not ray.is_initialized():
        ray.init(**(ray_args.ray_init_kwargs or {}))
    try:
        available = ray.cluster_resources()
        short = {k: v * workers_wanted for k, v in resources.items() if v * workers_wanted > available.get(k, 0)}
        if short:
            raise UserError(
                f"ray_num_workers={workers_wanted} × {RESOURCES_KEY}={json.dumps(resources)} needs {short}, the Ray "
                f"cluster has { ({k: available.get(k, 0) for k in short}) }: lower one of them or add nodes"
            )
        group = placement_group([resources] * workers_wanted, strategy="PACK")
        ray.get(group.ready())
        master_addr = ray_args.master_addr or _head_node_ip(ray)
        master_port = str(ray_args.master_port or find_available_port())
        order = sort_placement_group_by_node_ip(group, master_addr)
        worker_class = ray.remote(_worker_class())
        gpus = resources.get("GPU", 0)
        custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
        workers = []
        for rank in range(workers_wanted):
            env = {
                **os.environ,  # as LLaMA-Factory hands the driver's environment on (HF_HUB_OFFLINE, HF_HOME, ...)
                "RANK": str(rank),
                "WORLD_SIZE": str(workers_wanted),
                "MASTER_ADDR": master_addr,
                "MASTER_PORT": master_port,
                "TORCHELASTIC_USE_AGENT_STORE": "False",
            }
            workers.append(
                worker_class.options(
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        placement_group=group, placement_group_bundle_index=order[rank]
                    ),
                    runtime_env={"env_vars": env},
                    num_cpus=resources.get("CPU", 0),
                    num_gpus=gpus,
                    resources=custom,
                ).remote()
            )
        config = {"args": args, "callbacks": []}
        ray.get([worker.train.remote(config, list(templates)) for worker in workers])
        remove_placement_group(group)
    finally:
        ray.shutdown()
