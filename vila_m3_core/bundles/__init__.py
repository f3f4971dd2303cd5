"""Bundle-facing helpers: what the MONAI bundle configs in ``bundles/`` call.

Bundles hold configs and docs; the logic they need lives here:

- :mod:`.inputs`: validate user inputs (files, MRI sequences, 3D volumes, label prompts, weights) with clear errors.
- :mod:`.distributed`: CPU-capable (gloo) / CUDA (nccl) process-group helpers for the multi-GPU overlays.
- :mod:`.vista3d`: the VISTA3D Ignite evaluator, inferer and trainer used by ``expert_vista3d``.
- :mod:`.cxr`: the TorchXRayVision pieces used by ``expert_cxr``.
- :mod:`.vlm`: the VILA-M3 agent workflow used by the ``vila_m3_*`` bundles.
- :mod:`.packaging`: Model-Zoo-style ``<name>_v<version>.zip`` archives and ``model_info.json``.
- :mod:`.overrides`: reject bundle config overrides whose key does not exist.
- :mod:`.verify`: the Model-Zoo-style checks of ``ci/verify_bundle.py``.
- :mod:`.runner`: run a bundle through ``python -m monai.bundle run`` / ``torchrun`` in a subprocess.
- :mod:`.synthetic`: tiny synthetic data and random weights for CPU tests and CI.
- :mod:`.large_files`: hashes for ``large_files.yml``.
- :mod:`.cli`: the ``vila-m3 bundle`` verb.
"""
