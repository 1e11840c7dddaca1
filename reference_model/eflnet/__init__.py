"""EFLNet: Enhancing Feature Learning Network for infrared small target detection (Yang et al., TGRS 2024).

Two networks:

- the n/s/m/l family (:func:`build_eflnet`, :class:`EFLNet`, :class:`EFLNetConfig`, :data:`SCALES`):
  an anchor-free YOLOv8-style design at strides 4/8/16, the fast variant; parts in ``backbone``,
  ``neck``, ``dyhead``, ``head``, ``losses`` (ATFL, box loss) and ``assigner``;
- ``eflnet-yolov7`` (:func:`build_eflnet_yolov7`, :class:`EFLNetYOLOv7`, :class:`YOLOv7Config`):
  the authors' released network, YOLOv7 + dynamic head + anchor head; parts in ``elan``,
  ``yolov7_net``, ``dyhead``, ``anchor_head``, ``simota`` and ``yolov7_loss``.
"""

from .model import SCALES, EFLNet, EFLNetConfig, build_eflnet
from .yolov7 import EFLNetYOLOv7, YOLOv7Config, build_eflnet_yolov7

__all__ = [
    "SCALES",
    "EFLNet",
    "EFLNetConfig",
    "EFLNetYOLOv7",
    "YOLOv7Config",
    "build_eflnet",
    "build_eflnet_yolov7",
]
