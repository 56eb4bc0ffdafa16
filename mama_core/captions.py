"""Structured captions built from EMBED-style tabular metadata (docs/method.md §1.2).

A caption is a short clinical report whose segments come in report order: procedure,
reason, patient info, image info, breast composition, findings, impression, overall
assessment.  The wording lives in `resources/templates/captions.yaml`; this module only
fills it in.  Every sentence ends with '.' and contains no other '.' or ';', because the
local (sentence-level) alignment loss splits captions there (docs/method.md §1.4).

Meta-information masking (the paper's training-time augmentation): each of the six meta
fields (age, race, ethnicity, image type, side, view) is independently replaced by
"unknown" with probability `mask_prob`; the clinically meaningful parts (procedure,
reason, density, findings, BI-RADS) are never masked.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Mapping
from typing import Any, Protocol

from mama_core.config import read_yaml
from mama_core.errors import ConfigError
from mama_core.paths import resources_dir

# The six maskable meta fields, by the EMBED column that feeds each.
META_FIELDS: tuple[str, ...] = (
    "age_at_study",
    "RACE_DESC",
    "ETHNIC_GROUP_DESC",
    "FinalImageType",
    "ImageLateralityFinal",
    "ViewPosition",
)
CAPTION_KEYS: tuple[str, ...] = (
    "StudyDescription",
    "RACE_DESC",
    "ETHNIC_GROUP_DESC",
    "age_at_study",
    "FinalImageType",
    "ImageLateralityFinal",
    "ViewPosition",
    "tissueden",
    "asses",
    "massshape",
    "massdens",
    "calcfind",
    "calcdistri",
)
TASKS: dict[str, int] = {"birads": 7, "density": 4, "cancer": 2}

_MISSING_STRINGS = frozenset({"", "nan", "none", "null", "na", "n/a"})
# A sentence may not contain these: they would split it in two (docs/method.md §1.4).
_TERMINATORS = re.compile(r"[.;]")
_SENTENCE_END = re.compile(r"[.;]")


class _Rng(Protocol):
    def random(self) -> float: ...


@functools.cache
def templates() -> dict[str, Any]:
    """The caption templates, read once from resources/templates/captions.yaml."""
    path = resources_dir() / "templates" / "captions.yaml"
    data = read_yaml(path)
    if "sentences" not in data:
        raise ConfigError("caption templates have no 'sentences' section", path=path)
    return data


# ---------------------------------------------------------------- value parsing


def is_missing(value: object) -> bool:
    """True for None, NaN and the empty/'nan'/'NA' strings that CSV writers produce."""
    if value is None:
        return True
    if type(value) is str:  # the common case: a CSV cell
        return not value or value.strip().lower() in _MISSING_STRINGS
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in _MISSING_STRINGS


def _clean(value: object) -> str:
    """A field value as sentence-safe text: terminators removed, whitespace collapsed."""
    text = _TERMINATORS.sub(" ", str(value))
    return " ".join(text.split())


def _as_int(value: object) -> int | None:
    """'4', 4, 4.0, '4.0' -> 4; anything else -> None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if math.isnan(number) or number != int(number):
        return None
    return int(number)


def birads_category(value: object) -> int | None:
    """EMBED `asses` (letter A/N/B/P/S/M/K) or a number 0-6 -> BI-RADS category.

    Missing -> None.  Raises ValueError for anything else (callers decide whether to
    tolerate it: captions do, table readers report it)."""
    if is_missing(value):
        return None
    letters = templates()["birads_letters"]
    text = str(value).strip()
    if text.upper() in letters:
        return int(letters[text.upper()])
    number = _as_int(text)
    if number is not None and 0 <= number <= 6:
        return number
    raise ValueError(f"{value!r} is not a BI-RADS category (0-6 or one of {''.join(letters)})")


def density_category(value: object) -> int | None:
    """`tissueden` 1-4 (or the RSNA letters A-D) -> 1-4; missing -> None; else ValueError."""
    if is_missing(value):
        return None
    letters = templates()["density_letters"]
    text = str(value).strip()
    if text.upper() in letters:
        return int(letters[text.upper()])
    number = _as_int(text)
    if number is not None and 1 <= number <= 4:
        return number
    raise ValueError(f"{value!r} is not 1-4")


# ---------------------------------------------------------------- segments


def _lookup(table: Mapping[Any, str], value: object) -> str:
    """Map a code through a table; unknown codes are written as they are (never fail)."""
    key = str(value).strip()
    for candidate in (key, key.upper(), key.lower()):
        if candidate in table:
            return str(table[candidate])
    return _clean(key)


def _codes_phrase(table: Mapping[Any, str], value: object) -> str:
    """One or several codes ('P', 'P,A', 'P A') -> 'pleomorphic and amorphous'."""
    parts = [p for p in re.split(r"[,\s]+", str(value).strip()) if p]
    return " and ".join(_lookup(table, p) for p in parts) if parts else _clean(value)


def _meta_value(record: Mapping, key: str, masked: bool) -> object | None:
    """The record's value for a meta field, or None when masked or missing."""
    value = record.get(key)
    return None if masked or is_missing(value) else value


def _age_phrase(value: object | None) -> str:
    t = templates()
    if value is None:
        return t["unknown"]
    try:
        years = int(round(float(str(value).strip())))
    except ValueError:
        return _clean(value)
    return t["sentences"]["age"].format(years=years)


def _reason(description: object) -> str:
    """Screening vs diagnostic, from the procedure text (EMBED `StudyDescription`)."""
    t = templates()
    if not is_missing(description):
        text = str(description).lower()
        for reason, keywords in t["reason_keywords"].items():
            if any(k in text for k in keywords):
                return reason
    return t["unknown"]


def procedure_segment(record: Mapping) -> list[str]:
    t = templates()
    desc = record.get("StudyDescription")
    procedure = t["unknown"] if is_missing(desc) else _clean(desc)
    s = t["sentences"]
    return [s["procedure"].format(procedure=procedure), s["reason"].format(reason=_reason(desc))]


def patient_segment(record: Mapping, masked: frozenset[str] = frozenset()) -> list[str]:
    t = templates()
    unknown = t["unknown"]
    race = _meta_value(record, "RACE_DESC", "RACE_DESC" in masked)
    ethnicity = _meta_value(record, "ETHNIC_GROUP_DESC", "ETHNIC_GROUP_DESC" in masked)
    age = _meta_value(record, "age_at_study", "age_at_study" in masked)
    sentence = t["sentences"]["patient"].format(
        race=unknown if race is None else _clean(race),
        ethnicity=unknown if ethnicity is None else _clean(ethnicity),
        age=_age_phrase(age),
    )
    return [sentence]


def image_segment(record: Mapping, masked: frozenset[str] = frozenset()) -> list[str]:
    t = templates()
    unknown = t["unknown"]
    kind = _meta_value(record, "FinalImageType", "FinalImageType" in masked)
    side = _meta_value(record, "ImageLateralityFinal", "ImageLateralityFinal" in masked)
    view = _meta_value(record, "ViewPosition", "ViewPosition" in masked)
    sentence = t["sentences"]["image"].format(
        image_type=unknown if kind is None else _lookup(t["image_types"], kind),
        side=unknown if side is None else _lookup(t["sides"], side),
        view=unknown if view is None else _lookup(t["views"], view),
    )
    return [sentence]


def composition_sentence(density: int) -> str:
    """The breast-composition sentence for class 1-4 (also the density zero-shot prompt)."""
    t = templates()
    return t["sentences"]["composition"].format(density=t["density"][density])


def composition_segment(record: Mapping) -> list[str]:
    t = templates()
    raw = record.get("tissueden")
    try:
        density = density_category(raw)
    except ValueError:  # unknown code: say it as it is rather than fail
        phrase = f"density category {_clean(raw)}"
        return [t["sentences"]["composition"].format(density=phrase)]
    if density is None:
        return []
    sentences = [composition_sentence(density)]
    if density in t["sensitivity_warning_classes"]:
        sentences.append(t["sensitivity_warning"])
    return sentences


def _birads_or_raw(record: Mapping) -> tuple[int | None, str | None]:
    """(category, None) for a valid `asses`; (None, raw text) for an unknown code."""
    raw = record.get("asses")
    try:
        return birads_category(raw), None
    except ValueError:
        return None, _clean(raw)


def findings_segment(record: Mapping) -> list[str]:
    t = templates()
    s = t["sentences"]
    sentences: list[str] = []
    category, _ = _birads_or_raw(record)
    if category is not None:
        sentences.append(s["findings"].format(finding=t["birads"][category]["finding"]))
    shape, mass_density = record.get("massshape"), record.get("massdens")
    if not (is_missing(shape) and is_missing(mass_density)):
        sentences.append(s["mass_present"])
        if not is_missing(shape):
            sentences.append(s["mass_shape"].format(shape=_codes_phrase(t["mass_shape"], shape)))
        if not is_missing(mass_density):
            phrase = _codes_phrase(t["mass_density"], mass_density)
            sentences.append(s["mass_density"].format(density=phrase))
    morphology, distribution = record.get("calcfind"), record.get("calcdistri")
    if not (is_missing(morphology) and is_missing(distribution)):
        sentences.append(s["calc_present"])
        if not is_missing(morphology):
            phrase = _codes_phrase(t["calc_morphology"], morphology)
            sentences.append(s["calc_morphology"].format(morphology=phrase))
        if not is_missing(distribution):
            phrase = _codes_phrase(t["calc_distribution"], distribution)
            sentences.append(s["calc_distribution"].format(distribution=phrase))
    return sentences


def impression_sentence(category: int) -> str:
    """'BI-RADS Category k: <name>.' (also the BI-RADS zero-shot prompt)."""
    t = templates()
    return t["sentences"]["impression"].format(category=category, name=t["birads"][category]["name"])


def impression_segment(record: Mapping) -> list[str]:
    t = templates()
    category, raw = _birads_or_raw(record)
    if category is None and raw is None:
        return []
    if category is None:  # unknown code: keep it visible, no made-up assessment
        return [t["sentences"]["impression"].format(category=raw, name=t["unknown"])]
    assessment = t["sentences"]["assessment"].format(assessment=t["birads"][category]["assessment"])
    return [impression_sentence(category), assessment]


# ---------------------------------------------------------------- public API


def _draw_masked(mask_prob: float, rng: _Rng | None) -> frozenset[str]:
    """Which meta fields to hide: each independently with probability mask_prob."""
    if not 0.0 <= mask_prob <= 1.0:
        raise ConfigError(f"mask_prob={mask_prob} is not in [0, 1]", field="mask_prob")
    if mask_prob == 0.0:
        return frozenset()
    rng = rng if rng is not None else random.Random()
    return frozenset(f for f in META_FIELDS if float(rng.random()) < mask_prob)


def build_caption(record: Mapping, mask_prob: float = 0.0, rng: _Rng | None = None) -> str:
    """The structured caption of one image (docs/method.md §1), meta fields masked with mask_prob.

    `rng` is a `random.Random`, a `numpy.random.Generator` (anything with `.random()`),
    or None for a fresh unseeded generator.  Validation/test captions use mask_prob=0."""
    masked = _draw_masked(mask_prob, rng)
    sentences = (
        procedure_segment(record)
        + patient_segment(record, masked)
        + image_segment(record, masked)
        + composition_segment(record)
        + findings_segment(record)
        + impression_segment(record)
    )
    return " ".join(sentences)


def split_sentences(caption: str) -> list[str]:
    """Sentences end at '.' or ';' (the SLA unit); stripped, empty ones dropped.

    Each returned sentence keeps its terminator; text after the last terminator is a
    sentence of its own, so a caption without any terminator is one sentence."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(caption):
        piece = caption[start : match.end()].strip()
        if piece.rstrip(".;").strip():
            sentences.append(piece)
        start = match.end()
    tail = caption[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def meta_prefix(record: Mapping) -> str:
    """The unmasked patient + image information sentences of a record."""
    return " ".join(patient_segment(record) + image_segment(record))


def zero_shot_prompts(task: str, record: Mapping | None = None) -> list[str]:
    """One prompt per class, worded like the caption (docs/method.md §1.10).

    birads: 7 prompts (categories 0-6, the impression sentence); density: 4 (classes 1-4,
    the breast-composition sentence); cancer: 2 (negative, positive: the impression
    sentences of the BI-RADS categories named in captions.yaml).  With a record, each
    prompt is prefixed by that image's unmasked patient and image information."""
    if task == "birads":
        prompts = [impression_sentence(k) for k in range(7)]
    elif task == "density":
        prompts = [composition_sentence(k) for k in range(1, 5)]
    elif task == "cancer":
        classes = templates()["cancer_prompt_birads"]
        prompts = [impression_sentence(int(classes["negative"])), impression_sentence(int(classes["positive"]))]
    else:
        raise ConfigError(f"unknown zero-shot task {task!r}; expected one of {sorted(TASKS)}", field="task")
    if record is None:
        return prompts
    prefix = meta_prefix(record)
    return [f"{prefix} {p}" for p in prompts]
