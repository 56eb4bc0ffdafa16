"""Render the SVG application icon to a PNG (used by install-linux.sh).

    python installer/render_icon.py ICON.svg OUT.png SIZE
"""

from __future__ import annotations

import sys
from pathlib import Path


def render(svg: Path, png: Path, size: int) -> bool:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        print(f"{svg}: not a valid SVG", file=sys.stderr)
        return False
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    png.parent.mkdir(parents=True, exist_ok=True)
    return image.save(str(png), "PNG")


if __name__ == "__main__":
    sys.exit(0 if render(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])) else 1)
