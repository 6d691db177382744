"""What the report's two live sections (the drawing pad, the convolution playground) share:
their data and script inlined in the page, and their files in ``assets/``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ASSETS_DIR = Path(__file__).resolve().parent / "assets"


def data_and_script(data_id: str, data: Mapping[str, Any], script: str) -> str:
    """A JSON ``<script>`` element (``id=data_id``) that the section's script reads, then the
    script itself. Inside ``<script>`` only ``</`` can end the element early: it is escaped, and
    the JSON stays valid."""
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<script type="application/json" id="{data_id}">{payload}</script>'
        f"<script>{script}</script>"
    )


def read_assets(stem: str) -> tuple[str, str]:
    """``assets/<stem>.js`` and ``assets/<stem>.css``, as the report inlines them."""
    return tuple(  # type: ignore[return-value]
        (ASSETS_DIR / f"{stem}.{ext}").read_text(encoding="utf-8") for ext in ("js", "css")
    )
