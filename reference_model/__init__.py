"""Reference networks for irstd-bench: EFLNet (detector) and segmentation baselines.

Build any model by name with :func:`reference_model.registry.build_model`.
"""
