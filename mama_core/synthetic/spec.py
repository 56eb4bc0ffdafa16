"""What a synthetic study contains, drawn from a seed before any pixel is rendered.

A `StudySpec` holds everything the tables, the DICOM headers and the renderer need:
identifiers, patient fields, breast density, the findings of each side and the breast
geometry of each view. Study `index` of seed `seed` depends on (seed, index) only, so the
first four studies of a 100-study set are the same as those of a 4-study set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from pydicom.uid import generate_uid

from mama_core.synthetic.geometry import BreastGeometry, sample_side_geometry

SIDES = ("R", "L")
VIEWS = ("CC", "MLO")
IMAGE_KEYS = ("RCC", "LCC", "RMLO", "LMLO")  # file order; keys match Study.images

SCREENING = "MG Screening Bilateral"
DIAGNOSTIC = "MG Diagnostic Bilateral"

# EMBED `asses` letters (docs/method.md §1): A=0 N=1 B=2 P=3 S=4 M=5 K=6.
ASSES_LETTER = {0: "A", 1: "N", 2: "B", 3: "P", 4: "S", 5: "M", 6: "K"}

MASS_SHAPE_CODE = {"round": "R", "oval": "O", "lobulated": "L", "irregular": "X", "spiculated": "X"}
# Margin is not one of the brief's columns; kept as an extra EMBED-style column so that
# "spiculated" survives the round trip through the tables (C circumscribed, I indistinct, S spiculated).
MASS_MARGIN_CODE = {"round": "C", "oval": "C", "lobulated": "C", "irregular": "I", "spiculated": "S"}
CALC_FIND_NAME = {"P": "pleomorphic", "A": "amorphous", "F": "fine linear", "R": "round punctate"}

RACES = (
    ("Caucasian or White", 0.42),
    ("African American or Black", 0.40),
    ("Asian", 0.07),
    ("Native Hawaiian or Other Pacific Islander", 0.02),
    ("American Indian or Alaskan Native", 0.01),
    ("Unknown, Unavailable or Unreported", 0.08),
)
ETHNICITIES = (("Non-Hispanic or Latino", 0.85), ("Hispanic or Latino", 0.07), ("Unknown", 0.08))

# Dense (fibroglandular) share of the breast area per BI-RADS density class 1-4.
DENSE_FRACTION = {1: (0.02, 0.07), 2: (0.16, 0.28), 3: (0.44, 0.58), 4: (0.72, 0.86)}


@dataclass(frozen=True)
class Finding:
    """One lesion of one breast, seen on both its CC and its MLO.

    Position is anatomical: `depth` is the distance from the nipple as a fraction of the
    shorter of the two views' nipple-to-chest-wall depths, so it is the same number of mm
    on CC and MLO; `offset_cc` / `offset_mlo` place it across the breast (-1..1 of the
    half-width at that depth) in each projection."""

    kind: str  # 'mass' | 'calcification'
    side: str  # 'L' | 'R'
    shape: str  # mass: round/oval/lobulated/irregular/spiculated; calcification: EMBED calcfind letter
    size_mm: float  # mass diameter, or calcification cluster extent
    depth: float
    offset_cc: float
    offset_mlo: float
    birads: int
    seed: int  # drives shape details identically on both views
    massdens: str = ""  # '+' high, '=' equal, '-' low, '0' fat-containing
    calcdistri: str = ""  # G grouped, L linear, S segmental

    @property
    def massshape(self) -> str:
        return MASS_SHAPE_CODE.get(self.shape, "") if self.kind == "mass" else ""

    @property
    def massmargin(self) -> str:
        return MASS_MARGIN_CODE.get(self.shape, "") if self.kind == "mass" else ""

    @property
    def calcfind(self) -> str:
        return self.shape if self.kind == "calcification" else ""

    @property
    def cancer(self) -> int:
        """The synthetic world's pathology: irregular/spiculated masses and pleomorphic or
        fine linear calcifications are malignant, everything else benign."""
        if self.kind == "mass":
            return int(self.shape in ("irregular", "spiculated"))
        return int(self.shape in ("P", "F"))

    @property
    def label(self) -> str:
        """Ground-truth shape name: the mass shape or the calcification morphology."""
        return self.shape if self.kind == "mass" else CALC_FIND_NAME[self.shape]


@dataclass(frozen=True)
class StudySpec:
    seed: int
    index: int
    patient_id: str  # empi_anon
    accession: str  # acc_anon
    patient_name: str
    age: int
    race: str
    ethnicity: str
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    description: str
    density: int  # BI-RADS breast composition 1-4
    dense_fraction: float
    findings: tuple[Finding, ...]
    geometry: dict[str, BreastGeometry] = field(repr=False)  # image key -> geometry
    brightness: float = 0.0  # per-study exposure jitter

    @property
    def folder(self) -> str:
        return f"study_{self.index:04d}_{self.accession}"

    @property
    def study_uid(self) -> str:
        return _uid(self.seed, self.index, "study")

    def series_uid(self, key: str) -> str:
        return _uid(self.seed, self.index, "series", key)

    def sop_uid(self, key: str) -> str:
        return _uid(self.seed, self.index, "sop", key)

    def side_findings(self, side: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.side == side)

    def side_birads(self, side: str) -> int:
        """Highest BI-RADS of the side's findings; 1 (negative) when it has none."""
        return max((f.birads for f in self.side_findings(side)), default=1)

    @property
    def birads(self) -> int:
        return max(self.side_birads(s) for s in SIDES)

    @property
    def iso_date(self) -> str:
        return f"{self.study_date[:4]}-{self.study_date[4:6]}-{self.study_date[6:]}"


# Mass diameters: screening-detected masses are mostly 10-30 mm; smaller ones would sit
# inside one 14-px patch of the 224-px demo model and could not be localised at all.
MASS_SIZE_MM = (12.0, 30.0)

def _uid(seed: int, index: int, *parts: str) -> str:
    # generate_uid hashes the entropy sources (SHA-512) under pydicom's root: deterministic
    # per (seed, index, part), and distinct across seeds.
    return str(generate_uid(entropy_srcs=["mama-synthetic", str(seed), str(index), *parts]))


def _digits(seed: int, index: int, what: str, n: int) -> str:
    """A stable n-digit identifier (no leading zero) from a hash of (seed, index, what)."""
    h = int(hashlib.sha256(f"mama-synthetic:{seed}:{index}:{what}".encode()).hexdigest(), 16)
    low = 10 ** (n - 1)
    return str(low + h % (9 * low))


def study_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, index, stream])


def _choice(rng: np.random.Generator, table: tuple[tuple[str, float], ...]) -> str:
    names, weights = zip(*table)
    p = np.asarray(weights) / np.sum(weights)
    return str(names[rng.choice(len(names), p=p)])


def _mass_birads(shape: str, massdens: str, rng: np.random.Generator) -> int:
    if shape in ("round", "oval"):
        return 2 if massdens == "0" else 3
    if shape == "spiculated":
        return 5
    if shape == "irregular":
        return 4 if rng.random() < 0.6 else 5
    return 4  # lobulated


def _position(rng: np.random.Generator) -> tuple[float, float, float]:
    return float(rng.uniform(0.2, 0.7)), float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8))


def sample_mass(rng: np.random.Generator, side: str) -> Finding:
    shape = str(rng.choice(["round", "oval", "lobulated", "irregular", "spiculated"], p=[0.2, 0.25, 0.1, 0.25, 0.2]))
    if shape in ("round", "oval"):
        dens = str(rng.choice(["=", "+", "-", "0"], p=[0.45, 0.2, 0.1, 0.25]))
    else:
        dens = str(rng.choice(["+", "="], p=[0.75, 0.25]))
    depth, off_cc, off_mlo = _position(rng)
    return Finding(
        kind="mass", side=side, shape=shape, size_mm=float(rng.uniform(*MASS_SIZE_MM)), depth=depth,
        offset_cc=off_cc, offset_mlo=off_mlo, birads=_mass_birads(shape, dens, rng),
        seed=int(rng.integers(2**31)), massdens=dens,
    )


def sample_calcification(rng: np.random.Generator, side: str) -> Finding:
    find = str(rng.choice(["P", "A", "F", "R"], p=[0.35, 0.25, 0.15, 0.25]))
    distri = str(rng.choice(["G", "L", "S"], p=[0.7, 0.15, 0.15]))
    size = {"G": (7.0, 12.0), "L": (10.0, 18.0), "S": (14.0, 24.0)}[distri]
    depth, off_cc, off_mlo = _position(rng)
    return Finding(
        kind="calcification", side=side, shape=find, size_mm=float(rng.uniform(*size)), depth=depth,
        offset_cc=off_cc, offset_mlo=off_mlo, birads=4, seed=int(rng.integers(2**31)), calcdistri=distri,
    )


def sample_findings(rng: np.random.Generator) -> tuple[Finding, ...]:
    """~40 % of studies normal, ~45 % with a mass, the rest calcifications only; a mass study
    also has calcifications one time in five."""
    u = rng.random()
    if u < 0.40:
        return ()
    has_mass = u < 0.85
    mass_sides = [str(rng.choice(SIDES))] if has_mass else []
    if has_mass and rng.random() < 0.1:
        mass_sides = list(SIDES)
    found = [sample_mass(rng, s) for s in mass_sides]
    if not has_mass or rng.random() < 0.2:
        found.append(sample_calcification(rng, str(rng.choice(SIDES))))
    return tuple(found)


def sample_study(seed: int, index: int) -> StudySpec:
    """Draw study `index` of the data set made with `seed` (no pixels yet)."""
    rng = study_rng(seed, index)
    density = int(rng.integers(1, 5))
    findings = sample_findings(rng)
    description = DIAGNOSTIC if findings and rng.random() < 0.7 else SCREENING
    day = np.datetime64("2014-01-01") + int(rng.integers(0, 8 * 365))
    seconds = int(rng.integers(7 * 3600, 18 * 3600))
    geometry = sample_side_geometry(rng)
    return StudySpec(
        seed=seed, index=index, patient_id=_digits(seed, index, "empi", 8),
        accession=_digits(seed, index, "acc", 10), patient_name=f"SYNTHETIC^CASE{index:04d}",
        age=int(np.clip(rng.normal(58, 10), 40, 89)), race=_choice(rng, RACES),
        ethnicity=_choice(rng, ETHNICITIES), study_date=str(day).replace("-", ""),
        study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        description=description, density=density,
        dense_fraction=float(rng.uniform(*DENSE_FRACTION[density])), findings=findings,
        geometry=geometry, brightness=float(rng.uniform(-0.02, 0.02)),
    )
