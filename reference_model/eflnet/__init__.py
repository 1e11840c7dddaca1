"""EFLNet: Enhancing Feature Learning Network for infrared small target detection (Yang et al., TGRS 2024).

Public names: :func:`build_eflnet`, :class:`EFLNet`, :data:`SCALES`; the parts live in
``backbone``, ``neck``, ``dyhead``, ``head``, ``losses`` (ATFL, box loss) and ``assigner``.
"""

from .model import SCALES, EFLNet, build_eflnet

__all__ = ["SCALES", "EFLNet", "build_eflnet"]
