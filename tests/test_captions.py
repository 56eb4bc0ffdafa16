"""Structured captions (docs/method.md §1): content, order, masking statistics, sentence splitting,
zero-shot prompts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mama_core.captions import (
    META_FIELDS,
    build_caption,
    split_sentences,
    templates,
    zero_shot_prompts,
)
from mama_core.errors import ConfigError

RECORD = {
    "StudyDescription": "MG Screening Bilateral w/ CAD.",
    "RACE_DESC": "Caucasian or White",
    "ETHNIC_GROUP_DESC": "Non-Hispanic or Latino",
    "age_at_study": "62.4",
    "FinalImageType": "2D",
    "ImageLateralityFinal": "L",
    "ViewPosition": "MLO",
    "tissueden": 3.0,
    "asses": "S",
    "massshape": "X",
    "massdens": "+",
    "calcfind": "P",
    "calcdistri": "G",
}

# What each meta field reads like when masked (the caption says "unknown" in its slot).
MASKED_MARKERS = {
    "age_at_study": "age is unknown",
    "RACE_DESC": "race is unknown",
    "ETHNIC_GROUP_DESC": "ethnicity is unknown",
    "FinalImageType": "image type is unknown",
    "ImageLateralityFinal": "side is unknown",
    "ViewPosition": "view is unknown",
}


def test_unmasked_caption_content_and_order():
    caption = build_caption(RECORD)
    expected_in_order = [
        "Procedure reported: MG Screening Bilateral w/ CAD.",
        "Reason for procedure: screening.",
        "race is Caucasian or White",
        "ethnicity is Non-Hispanic or Latino",
        "age is 62 years old",
        "image type is 2D",
        "side is left",
        "view is mediolateral oblique (MLO)",
        "the breasts are heterogeneously dense",
        "This may lower the sensitivity of mammography.",
        "Findings: a suspicious abnormality is present.",
        "A mass is present in the breast.",
        "The mass shape is irregular.",
        "The mass has high density.",
        "Calcifications are present in the breast.",
        "The calcification morphology is pleomorphic.",
        "The calcification distribution is grouped.",
        "BI-RADS Category 4: suspicious.",
        "Overall assessment:",
    ]
    positions = [caption.index(part) for part in expected_in_order]
    assert positions == sorted(positions)
    assert "unknown" not in caption


def test_every_sentence_ends_with_a_period_and_has_no_inner_terminator():
    for record in (RECORD, {}, {"asses": 0, "tissueden": 1}, {"asses": "Q", "massshape": "W.;Z"}):
        caption = build_caption(record)
        sentences = split_sentences(caption)
        assert all(s.endswith(".") for s in sentences)
        assert all(";" not in s and "." not in s[:-1] for s in sentences)
        assert caption.count(".") == len(sentences)


@pytest.mark.parametrize(
    "density, phrase, warned",
    [
        (1, "almost entirely fatty", False),
        ("2", "scattered areas of fibroglandular density", False),
        (3.0, "heterogeneously dense", True),
        ("D", "extremely dense", True),
    ],
)
def test_density_phrases_and_sensitivity_warning(density, phrase, warned):
    caption = build_caption({"tissueden": density})
    assert phrase in caption
    assert ("This may lower the sensitivity of mammography." in caption) is warned


@pytest.mark.parametrize("asses, category", [("A", 0), ("N", 1), ("B", 2), ("P", 3), ("S", 4), ("M", 5), ("K", 6), (4, 4), ("6.0", 6)])
def test_birads_letters_and_numbers(asses, category):
    caption = build_caption({"asses": asses})
    assert f"BI-RADS Category {category}:" in caption
    assert caption.count("BI-RADS Category") == 1


def test_no_mass_or_calcification_sentences_without_them():
    caption = build_caption({"asses": "N", "massshape": "", "massdens": float("nan"), "calcfind": None})
    assert "mass is present" not in caption
    assert "Calcifications" not in caption
    assert "Findings: there is no significant mass" in caption


def test_mass_from_density_code_alone_and_multiple_codes():
    caption = build_caption({"massdens": "0", "calcfind": "P,A", "calcdistri": "S"})
    assert "A mass is present in the breast." in caption
    assert "fat-containing density" in caption
    assert "pleomorphic and amorphous" in caption
    assert "segmental" in caption


def test_unknown_codes_are_tolerated_and_written_raw():
    caption = build_caption({"asses": "Z", "tissueden": "q", "massshape": "W", "calcdistri": "V", "ViewPosition": "XYZ"})
    assert "BI-RADS Category Z" in caption
    assert "density category q" in caption
    assert "The mass shape is W." in caption
    assert "The calcification distribution is V." in caption
    assert "view is XYZ" in caption


@pytest.mark.parametrize(
    "description, reason",
    [("MG Screening Bilateral", "screening"), ("MG Diagnostic Left", "diagnostic"), ("MG Diag Mammo Bil", "diagnostic"), ("Mammogram", "unknown"), (None, "unknown")],
)
def test_reason_from_description(description, reason):
    assert f"Reason for procedure: {reason}." in build_caption({"StudyDescription": description})


def test_missing_meta_reads_unknown():
    caption = build_caption({})
    for marker in MASKED_MARKERS.values():
        assert marker in caption
    assert "Procedure reported: unknown." in caption


def _masked_fields(caption: str) -> set[str]:
    return {field for field, marker in MASKED_MARKERS.items() if marker in caption}


@pytest.mark.parametrize("p", [0.3, 0.8])
def test_masking_statistics(p):
    rng = random.Random(1234)
    draws = 2000
    counts = dict.fromkeys(META_FIELDS, 0)
    age_and_race = 0
    fixed = [s for s in split_sentences(build_caption(RECORD)) if not s.startswith(("Patient", "Image"))]
    for _ in range(draws):
        caption = build_caption(RECORD, mask_prob=p, rng=rng)
        masked = _masked_fields(caption)
        for field in masked:
            counts[field] += 1
        age_and_race += {"age_at_study", "RACE_DESC"} <= masked
        # procedure, reason, density, findings and BI-RADS are never masked
        assert all(s in caption for s in fixed)
    # binomial std is sqrt(p(1-p)/2000) <= 0.012; 0.05 is over 4 std
    for field, count in counts.items():
        assert abs(count / draws - p) < 0.05, field
    assert abs(age_and_race / draws - p * p) < 0.05  # fields are masked independently


def test_masking_extremes_and_numpy_generator():
    assert _masked_fields(build_caption(RECORD, mask_prob=0.0)) == set()
    assert _masked_fields(build_caption(RECORD, mask_prob=1.0, rng=random.Random(0))) == set(META_FIELDS)
    a = build_caption(RECORD, 0.5, np.random.default_rng(7))
    b = build_caption(RECORD, 0.5, np.random.default_rng(7))
    assert a == b
    captions = {build_caption(RECORD, 0.5, np.random.default_rng(s)) for s in range(20)}
    assert len(captions) > 1


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_mask_prob_out_of_range(p):
    with pytest.raises(ConfigError):
        build_caption(RECORD, mask_prob=p)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("   ", []),
        ("no terminator at all", ["no terminator at all"]),
        ("One. Two; Three", ["One.", "Two;", "Three"]),
        ("One..  Two.", ["One.", "Two."]),
        ("... ;", []),
        ("  Lead space.Trailing  ", ["Lead space.", "Trailing"]),
        ("Single sentence.", ["Single sentence."]),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_prompt_counts():
    assert len(zero_shot_prompts("birads")) == 7
    assert len(zero_shot_prompts("density")) == 4
    assert len(zero_shot_prompts("cancer")) == 2
    with pytest.raises(ConfigError):
        zero_shot_prompts("laterality")


def test_prompts_match_caption_sentences():
    for k, prompt in enumerate(zero_shot_prompts("birads")):
        assert prompt in split_sentences(build_caption({"asses": k}))
        assert prompt.startswith(f"BI-RADS Category {k}:")
    for k, prompt in enumerate(zero_shot_prompts("density"), start=1):
        assert prompt in split_sentences(build_caption({"tissueden": k}))
    negative, positive = zero_shot_prompts("cancer")
    assert negative != positive
    assert negative in zero_shot_prompts("birads") and positive in zero_shot_prompts("birads")


def test_prompts_prefixed_with_unmasked_meta():
    plain = zero_shot_prompts("density")
    prefixed = zero_shot_prompts("density", RECORD)
    sentences = split_sentences(build_caption(RECORD))
    patient = next(s for s in sentences if s.startswith("Patient information"))
    image = next(s for s in sentences if s.startswith("Image information"))
    for p, q in zip(plain, prefixed):
        assert q == f"{patient} {image} {p}"
        assert split_sentences(q)[-1] == p
    assert "unknown" not in prefixed[0]
    # the labels in the record do not leak into the prefix
    assert "BI-RADS" not in prefixed[0].replace(plain[0], "") and "Findings" not in prefixed[0]


def test_templates_keep_the_sentence_rules():
    t = templates()
    for name, sentence in t["sentences"].items():
        if name != "age":
            assert sentence.endswith(".") and "." not in sentence[:-1] and ";" not in sentence, name
    phrases = [*t["density"].values(), *t["views"].values(), *t["mass_shape"].values(), *t["calc_morphology"].values()]
    phrases += [v for entry in t["birads"].values() for v in entry.values()]
    assert all("." not in p and ";" not in p for p in phrases)
    assert t["birads_letters"] == {"A": 0, "N": 1, "B": 2, "P": 3, "S": 4, "M": 5, "K": 6}
