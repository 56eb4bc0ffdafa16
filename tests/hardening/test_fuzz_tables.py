"""Mutated CSV tables (EMBED metadata/clinical, RSNA train.csv, generic CSV, labels CSV):
missing columns, wrong types, unknown codes, non-UTF-8 bytes, NULs, empty files, ragged
rows, huge fields, broken quoting, random bytes. Every load either succeeds or raises a
MamaError (DataError) naming a file of the table set; never another exception."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import fuzzlib, tablefuzz

FAST = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
_counter = itertools.count()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("tables")


@pytest.fixture(scope="module")
def synthetic(work):
    return fuzzlib.synthetic_dir(work)


def _check(work, synthetic, target, kind, seed):
    victim, call = tablefuzz.prepare(target, work / f"case-{next(_counter)}", synthetic)
    victim.write_bytes(tablefuzz.mutate_table(victim.read_bytes(), kind, seed))
    result, detail = tablefuzz.outcome(call, victim)
    assert result in ("ok", "mama_error"), f"{target} {kind} seed={seed}: {result} {detail}"


@FAST
@given(target=st.sampled_from(tablefuzz.TARGETS), kind=st.sampled_from(tablefuzz.KINDS), seed=st.integers(0, 2**31 - 1))
def test_mutated_tables_load_or_raise_data_error(work, synthetic, target, kind, seed):
    _check(work, synthetic, target, kind, seed)


@pytest.mark.slow
@settings(FAST, max_examples=1500)
@given(target=st.sampled_from(tablefuzz.TARGETS), kind=st.sampled_from(tablefuzz.KINDS), seed=st.integers(0, 2**31 - 1))
def test_mutated_tables_big_run(work, synthetic, target, kind, seed):
    _check(work, synthetic, target, kind, seed)


@pytest.mark.parametrize("target", tablefuzz.TARGETS)
def test_unmutated_tables_load(work, synthetic, target):
    victim, call = tablefuzz.prepare(target, work / f"clean-{target}", synthetic)
    assert tablefuzz.outcome(call, victim)[0] == "ok"


@pytest.mark.parametrize("target", tablefuzz.TARGETS)
@pytest.mark.parametrize("content, words", [
    (b"", "empty"), (b"\xff\xfeb\x00a\x00d\x00", "UTF-8"), (b"path,x\n" + b"y" * 200_000 + b",1\n", "malformed"),
])
def test_specific_bad_tables_name_the_file(work, synthetic, target, content, words):
    from mama_core.errors import DataError

    victim, call = tablefuzz.prepare(target, work / f"bad-{target}-{next(_counter)}", synthetic)
    victim.write_bytes(content)
    with pytest.raises(DataError) as info:
        call()
    assert str(victim) in str(info.value) or victim.name in str(info.value)
    if target != "generic" or words != "malformed":
        assert words.lower() in str(info.value).lower() or "missing required" in str(info.value)
