"""The catalogue: every language has the same texts, with the same placeholders."""

from __future__ import annotations

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
    """Each claim in each state it can be in, rendered from the catalogue."""
    cnn = {
        "cnn_test_accuracy": 0.99,
        "mlp_test_accuracy": 0.98,
        "cnn_params": 61482,
        "mlp_params": 669706,
        "params_ratio": 0.0918,
    }
    bn = {
        "cnn_small_bn_val_accuracy": 0.99,
        "cnn_small_val_accuracy": 0.98,
        "cnn_small_bn_test_accuracy": 0.98,
        "cnn_small_test_accuracy": 0.99,
    }
    early = {
        "cnn_small_bn_early_val_accuracy": 0.97,
        "cnn_small_early_val_accuracy": 0.96,
        "cnn_small_bn_epoch1_val_accuracy": 0.95,
        "cnn_small_epoch1_val_accuracy": 0.94,
    }
    cases = [
        claims.Claim(
            "cnn_vs_mlp", claims.HOLDS, dict.fromkeys(claims.PARTS["cnn_vs_mlp"], True), cnn
        ),
        claims.Claim("cnn_vs_mlp", claims.NOT_CHECKED, missing=["mlp"]),
        claims.Claim(
            "batchnorm",
            claims.PARTLY,
            {
                "higher validation accuracy": True,
                "higher test accuracy": False,
                "faster early rise": None,
            },
            bn,
        ),
        claims.Claim("batchnorm", claims.PARTLY, {}, {**bn, **early, "early_epochs": 3}),
        claims.Claim("batchnorm", claims.PARTLY, {}, {**bn, **early, "early_epochs": 1}),
    ]
    for claim in cases:
        parts = dict.fromkeys(claims.PARTS[claim.id], True) | dict(claim.parts)
        claim = claims.Claim(claim.id, claim.verdict, parts, claim.evidence, claim.missing)
        text = claims.reason(claim, lang) + claims.verdict_sentence(claim, lang)
        assert "{" not in text and text.strip()
        assert claims.statement(claim.id, lang)
        for part, value in claims.ordered_parts(claim):
            assert claims.part_name(part, lang) != part or lang == "en"
            assert claims.answer(value, lang)
