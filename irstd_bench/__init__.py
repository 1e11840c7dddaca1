"""irstd-bench: infrared small target detection toolkit.

Public entry points: :mod:`irstd_bench.datasets` (release layouts and ground truth),
:func:`irstd_bench.targets.mask_to_targets` (pixels -> targets), :mod:`irstd_bench.convert`
(COCO / YOLO / VOC), :mod:`irstd_bench.evaluate` (target-level metrics), :mod:`irstd_bench.report`.
"""

__version__ = "0.1.0"
