"""Every user-facing string of figures, report, drawing pad and claims, in each language.

The texts live in ``intro_cnn/i18n/locales/<lang>.yaml``, one section per part of the output
(``figures``, ``report``, ``pad``, ``claims``); both files have the same keys and the same
``{placeholders}`` (checked by tests/test_i18n.py). Everything reads them through :func:`text`
(or :func:`section` for a whole section), so a new language is one more YAML file.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path
from typing import Any

import yaml

from intro_cnn.config.schema import LANGUAGES

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGS = LANGUAGES  # Spanish first: the notebook's language, the default (report.lang)


@functools.cache
def catalogue(lang: str) -> dict[str, dict[str, str]]:
    """All sections of ``lang``'s catalogue (read once per process)."""
    if lang not in LANGS:
        raise KeyError(f"Unknown language {lang!r}: valid ones are {', '.join(LANGS)}.")
    with open(LOCALES_DIR / f"{lang}.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def section(name: str, lang: str) -> dict[str, str]:
    return catalogue(lang)[name]


def has(name: str, key: str, lang: str) -> bool:
    return key in section(name, lang)


def text(name: str, key: str, lang: str, **fields: Any) -> str:
    """The text ``key`` of section ``name`` in ``lang``; ``fields`` fill its placeholders."""
    texts = section(name, lang)  # an unknown language says so
    try:
        template = texts[key]
    except KeyError:
        raise KeyError(
            f"No text {name}.{key} for language {lang!r}: add it to "
            f"intro_cnn/i18n/locales/{lang}.yaml (and to every other language)."
        ) from None
    return template.format(**fields) if fields else template


def placeholders(template: str) -> set[str]:
    """The field names a template uses (``{n:,}`` -> ``n``)."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def thousands(n: int | float) -> str:
    """``61482`` as ``61 482``: a narrow no-break space reads the same in Spanish and English."""
    return f"{int(n):,}".replace(",", "\u202f")
