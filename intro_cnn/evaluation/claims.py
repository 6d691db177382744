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
NOT_DISTINGUISHABLE = "not distinguishable from seed noise"
VERDICTS = (HOLDS, PARTLY, DOES_NOT_HOLD, NOT_DISTINGUISHABLE, NOT_CHECKED)
# A part's outcome: True holds (its interval excludes 0 in the claimed direction), False fails
# the other way, NOISE when the interval holds 0, None when it could not be checked.
NOISE = "noise"
PartState = bool | str | None

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
    # Each part: True holds, False does not, NOISE not distinguishable, None not checked.
    parts: Mapping[str, PartState] = field(default_factory=dict)
    # The numbers the verdict rests on.
    evidence: Mapping[str, float] = field(default_factory=dict)
    # Models the claim needs that params.yaml does not train (then: not checked).
    missing: Sequence[str] = ()
    statement: str = ""  # in English, for readers of the JSON
    reason: str = ""  # in English: the numbers, then the verdict
    # Per part judged across seeds: the two models' values, the difference and its interval
    # (intro_cnn.evaluation.seeds.Difference.as_json, plus ``a`` and ``b``).
    intervals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Claim:
        return cls(
            id=str(entry["id"]),
            verdict=str(entry["verdict"]),
            parts=dict(entry.get("parts") or {}),
            evidence=dict(entry.get("evidence") or {}),
            intervals={k: dict(v) for k, v in (entry.get("intervals") or {}).items()},
            missing=tuple(entry.get("missing") or ()),
            statement=str(entry.get("statement", "")),
            reason=str(entry.get("reason", "")),
        )


def is_state(value: PartState, state: PartState) -> bool:
    """Whether a part's outcome is ``state`` (True, False, NOISE or None, compared exactly)."""
    return value is state if not isinstance(state, str) else value == state


def verdict_of(parts: Mapping[str, PartState]) -> str:
    """The claim's verdict from its parts: a part left unchecked keeps it from holding whole."""
    checked = [v for v in parts.values() if v is not None]
    if not checked:
        return NOT_CHECKED
    if len(checked) < len(parts):
        return PARTLY
    for state, verdict in ((True, HOLDS), (False, DOES_NOT_HOLD), (NOISE, NOT_DISTINGUISHABLE)):
        if all(is_state(v, state) for v in checked):
            return verdict
    return PARTLY


def _t(key: str, lang: str, **fields: Any) -> str:
    return i18n.text("claims", key, lang, **fields)


def statement(claim_id: str, lang: str) -> str:
    return _t(f"statement_{claim_id}", lang)


def part_name(part: str, lang: str) -> str:
    return _t(f"part_{part}", lang) if i18n.has("claims", f"part_{part}", lang) else part


def answer(value: PartState, lang: str) -> str:
    """``yes``, ``no``, ``not distinguishable`` or ``not checked`` for one part, in ``lang``."""
    if value is True or value is False:
        return _t("yes" if value else "no", lang)
    return _t("noise" if value == NOISE else "unchecked", lang)


def verdict_name(verdict: str, lang: str) -> str:
    return _t(verdict.replace(" ", "_"), lang) if verdict in VERDICTS else verdict


def ordered_parts(claim: Claim) -> list[tuple[str, PartState]]:
    order = {p: i for i, p in enumerate(PARTS.get(claim.id, ()))}
    return sorted(claim.parts.items(), key=lambda kv: order.get(kv[0], len(order)))


def _sentence_case(text: str) -> str:
    """A part's name opening a sentence: its first letter upper case."""
    return text[:1].upper() + text[1:]


def interval_sentence(claim: Claim, part: str, lang: str) -> str:
    """One part judged across seeds: both values, the difference, its interval and outcome."""
    better, other = CLAIM_MODELS[claim.id]
    iv = claim.intervals[part]
    seeds = ", ".join(str(s) for s in iv["seeds"])
    fields = {
        "part": part_name(part, lang),
        "a": better,
        "b": other,
        "a_value": iv["a"],
        "b_value": iv["b"],
        "diff": 100 * iv["mean"],
        "low": 100 * iv["low"],
        "high": 100 * iv["high"],
        "seeds": seeds,
        "n": len(iv["seeds"]),
        "state": answer(claim.parts.get(part), lang),
    }
    if "early_epochs" in iv:
        fields["part"] += " " + _t("early_detail", lang, k=int(iv["early_epochs"]))
    fields["part"] = _sentence_case(fields["part"])
    key = {"paired": "reason_paired", "one against sample": "reason_one_against_sample"}
    return _t(key.get(iv["rule"], "reason_single"), lang, **fields)


def reason(claim: Claim, lang: str) -> str:
    """The numbers behind the verdict, in ``lang``: one sentence per part."""
    ev = claim.evidence
    if claim.missing:
        return _t("reason_missing", lang, models=", ".join(claim.missing))
    if claim.id not in PARTS:
        raise KeyError(f"claims.json: unknown claim {claim.id!r} (rerun `dvc repro compare`).")
    sentences = []
    for part, value in ordered_parts(claim):
        if part in claim.intervals:
            sentences.append(interval_sentence(claim, part, lang))
        elif part == "far fewer parameters":
            better, other = CLAIM_MODELS[claim.id]
            sentences.append(
                _t(
                    "reason_params",
                    lang,
                    a=better,
                    b=other,
                    a_params=i18n.thousands(ev[f"{better}_params"]),
                    b_params=i18n.thousands(ev[f"{other}_params"]),
                    percent=100 * ev["params_ratio"],
                    state=answer(value, lang),
                )
            )
        else:
            part_text = _sentence_case(part_name(part, lang))
            sentences.append(_t("reason_not_checked", lang, part=part_text))
    return " ".join(sentences)


def verdict_sentence(claim: Claim, lang: str) -> str:
    """``The claim holds.``, or which parts hold, which do not and which are noise."""
    if claim.verdict != PARTLY:
        return _t("verdict_sentence", lang, verdict=verdict_name(claim.verdict, lang))
    named = ordered_parts(claim)
    groups = (
        ("list_holds", [p for p, v in named if v is True]),
        ("list_fails", [p for p, v in named if v is False]),
        ("list_noise", [p for p, v in named if is_state(v, NOISE)]),
        ("list_unchecked", [p for p, v in named if v is None]),
    )
    out = [_t("verdict_partly", lang)]
    for key, group in groups:
        if group:
            out.append(_t(key, lang, parts="; ".join(part_name(p, lang) for p in group)))
    return " ".join(out)
