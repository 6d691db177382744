"""The catalogue: every language has the same texts, with the same placeholders."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from intro_cnn import i18n
from intro_cnn.evaluation import claims
from intro_cnn.reporting import plotting


def test_every_language_has_the_same_keys_and_placeholders():
    reference = i18n.catalogue(i18n.LANGS[0])
    for lang in i18n.LANGS[1:]:
        other = i18n.catalogue(lang)
        assert set(other) == set(reference), lang
        for name, texts in reference.items():
            assert set(other[name]) == set(texts), (lang, name, set(other[name]) ^ set(texts))
            for key, template in texts.items():
                assert template.strip() and other[name][key].strip(), (lang, name, key)
                assert i18n.placeholders(template) == i18n.placeholders(other[name][key]), (
                    lang,
                    name,
                    key,
                )


def test_every_catalogue_file_is_a_listed_language():
    files = sorted(p.stem for p in i18n.LOCALES_DIR.glob("*.yaml"))
    assert files == sorted(i18n.LANGS)
    for lang in i18n.LANGS:  # plain YAML strings (a bare `no` would read as False)
        raw = yaml.safe_load((i18n.LOCALES_DIR / f"{lang}.yaml").read_text(encoding="utf-8"))
        assert all(isinstance(v, str) for texts in raw.values() for v in texts.values())


def test_an_unknown_text_or_language_names_the_file_to_edit():
    with pytest.raises(KeyError, match=r"intro_cnn/i18n/locales/es\.yaml"):
        i18n.text("report", "no_such_key", "es")
    with pytest.raises(KeyError, match="valid ones are es, en"):
        i18n.text("report", "title", "fr")


def test_spanish_follows_the_notebook():
    assert plotting.label("accuracy", "es") == "precisión"
    assert plotting.label("epoch", "es") == "época"
    assert i18n.thousands(61482) == "61\u202f482"


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_every_claim_sentence_renders_in_every_language(lang):
    """Each claim in each state it can be in, each rule of interval, rendered from the
    catalogue."""
    cnn = {"cnn_params": 61482, "mlp_params": 669706, "params_ratio": 0.0918}

    def interval(rule: str, **extra) -> dict:
        numbers = {"mean": 0.01, "low": -0.002, "high": 0.02, "a": 0.99, "b": 0.98}
        return {"rule": rule, "seeds": [1, 2], **numbers, **extra}

    rules = ("paired", "one against sample", "single runs")
    cases = [
        claims.Claim("cnn_vs_mlp", claims.NOT_CHECKED, missing=["mlp"]),
        claims.Claim("batchnorm", claims.PARTLY, {"faster early rise": None}),
    ]
    for rule, state in zip(rules, (True, claims.NOISE, None), strict=True):
        cases.append(
            claims.Claim(
                "cnn_vs_mlp",
                claims.PARTLY,
                {"better test accuracy": state, "far fewer parameters": True},
                cnn,
                intervals={"better test accuracy": interval(rule)},
            )
        )
        cases.append(
            claims.Claim(
                "batchnorm",
                claims.PARTLY,
                {"higher validation accuracy": state, "higher test accuracy": False},
                intervals={
                    "higher validation accuracy": interval(rule),
                    "higher test accuracy": interval(rule),
                    "faster early rise": interval(rule, early_epochs=3),
                },
            )
        )
    for claim in cases:
        parts = dict.fromkeys(claims.PARTS[claim.id], True) | dict(claim.parts)
        claim = dataclasses.replace(claim, parts=parts)
        text = claims.reason(claim, lang) + claims.verdict_sentence(claim, lang)
        assert "{" not in text and text.strip()
        assert claims.statement(claim.id, lang)
        for part, value in claims.ordered_parts(claim):
            assert claims.part_name(part, lang) != part or lang == "en"
            assert claims.answer(value, lang)
    for verdict in claims.VERDICTS:
        assert claims.verdict_name(verdict, lang) != verdict or lang == "en"
