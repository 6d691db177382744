"""The notebook's claims as data: the schema of ``claims.json`` and the sentences about them.

The evaluate stage judges each claim and writes a :class:`Claim` per claim: its id, a verdict,
each part's outcome and the numbers behind them (``evidence``). Every sentence about a claim
(statement, part names, the numbers in words, the verdict) is rendered here from the
catalogue's ``claims`` texts in any language, so the report never parses prose. The English
``statement`` and ``reason`` are also stored, for readers of ``claims.json`` and
``comparison.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intro_cnn import i18n

HOLDS, PARTLY, DOES_NOT_HOLD, NOT_CHECKED = "holds", "partly holds", "does not hold", "not checked"
VERDICTS = (HOLDS, PARTLY, DOES_NOT_HOLD, NOT_CHECKED)

# The models each claim compares, (the one claimed better, the one it is compared with): named
# here only, for the claims and for every figure and table about them.
CLAIM_MODELS: dict[str, tuple[str, str]] = {
    "cnn_vs_mlp": ("cnn", "mlp"),
    "batchnorm": ("cnn_small_bn", "cnn_small"),
}

# Each claim's parts, in the order its statement names them.
PARTS: dict[str, tuple[str, ...]] = {
    "cnn_vs_mlp": ("better test accuracy", "far fewer parameters"),
    "batchnorm": ("higher validation accuracy", "higher test accuracy", "faster early rise"),
}


@dataclass(frozen=True)
class Claim:
    """A claim of the notebook checked against the numbers (one entry of claims.json)."""

    id: str
    verdict: str  # one of VERDICTS
    # Each part: True holds, False does not, None could not be checked.
    parts: Mapping[str, bool | None] = field(default_factory=dict)
    # The numbers the verdict rests on.
    evidence: Mapping[str, float] = field(default_factory=dict)
    # Models the claim needs that params.yaml does not train (then: not checked).
    missing: Sequence[str] = ()
    statement: str = ""  # in English, for readers of the JSON
    reason: str = ""  # in English: the numbers, then the verdict

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Claim:
        return cls(
            id=str(entry["id"]),
            verdict=str(entry["verdict"]),
            parts=dict(entry.get("parts") or {}),
            evidence=dict(entry.get("evidence") or {}),
            missing=tuple(entry.get("missing") or ()),
            statement=str(entry.get("statement", "")),
            reason=str(entry.get("reason", "")),
        )


def verdict_of(parts: Mapping[str, bool | None]) -> str:
    checked = [v for v in parts.values() if v is not None]
    if not checked:
        return NOT_CHECKED
    if all(checked):
        return HOLDS
    if not any(checked):
        return DOES_NOT_HOLD
    return PARTLY


def _t(key: str, lang: str, **fields: Any) -> str:
    return i18n.text("claims", key, lang, **fields)


def statement(claim_id: str, lang: str) -> str:
    return _t(f"statement_{claim_id}", lang)


def part_name(part: str, lang: str) -> str:
    return _t(f"part_{part}", lang) if i18n.has("claims", f"part_{part}", lang) else part


def answer(value: bool | None, lang: str) -> str:
    """``yes``, ``no`` or ``not checked`` for one part, in ``lang``."""
    return _t({True: "yes", False: "no"}.get(value, "unchecked"), lang)  # type: ignore[arg-type]


def verdict_name(verdict: str, lang: str) -> str:
    return _t(verdict.replace(" ", "_"), lang) if verdict in VERDICTS else verdict


def ordered_parts(claim: Claim) -> list[tuple[str, bool | None]]:
    order = {p: i for i, p in enumerate(PARTS.get(claim.id, ()))}
    return sorted(claim.parts.items(), key=lambda kv: order.get(kv[0], len(order)))


def reason(claim: Claim, lang: str) -> str:
    """The numbers behind the verdict, in ``lang``."""
    ev = claim.evidence
    if claim.missing:
        return _t("reason_missing", lang, models=", ".join(claim.missing))
    yes = {p: answer(v, lang) for p, v in claim.parts.items()}
    if claim.id == "cnn_vs_mlp":
        better, other = CLAIM_MODELS[claim.id]
        fields = {
            **ev,
            "diff": 100 * (ev[f"{better}_test_accuracy"] - ev[f"{other}_test_accuracy"]),
            "percent": 100 * ev["params_ratio"],
            f"{better}_params": i18n.thousands(ev[f"{better}_params"]),
            f"{other}_params": i18n.thousands(ev[f"{other}_params"]),
            "better": yes["better test accuracy"],
            "fewer": yes["far fewer parameters"],
        }
        return _t("reason_cnn_vs_mlp", lang, **fields)
    if claim.id == "batchnorm":
        out = _t(
            "reason_batchnorm",
            lang,
            **ev,
            val_better=yes["higher validation accuracy"],
            test_better=yes["higher test accuracy"],
        )
        if "early_epochs" not in ev:
            return f"{out} {_t('reason_batchnorm_no_history', lang)}"
        k = int(ev["early_epochs"])
        key = "reason_batchnorm_epoch1" if k == 1 else "reason_batchnorm_early"
        early = _t(key, lang, **{**ev, "early_epochs": k}, faster=yes["faster early rise"])
        return f"{out} {early}"
    raise KeyError(f"claims.json: unknown claim {claim.id!r} (rerun `dvc repro compare`..")


def verdict_sentence(claim: Claim, lang: str) -> str:
    """``The claim holds.``, or which parts hold and which do not."""
    if claim.verdict != PARTLY:
        return _t("verdict_sentence", lang, verdict=verdict_name(claim.verdict, lang))
    named = ordered_parts(claim)
    return _t(
        "verdict_partly",
        lang,
        holding="; ".join(part_name(p, lang) for p, v in named if v),
        failing="; ".join(part_name(p, lang) for p, v in named if v is False),
    )
