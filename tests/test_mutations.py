"""The mutation list of tools/mutations.py stays in step with the code and the tests.

Running the mutations takes minutes (`make mutations`); this only checks that
each still applies (its text occurs once) and names tests that exist, so a
refactoring cannot silently retire a proof.
"""

import importlib.util
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("mutations", ROOT / "tools" / "mutations.py")
mutations = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("mutations", mutations)  # dataclasses look their module up
_spec.loader.exec_module(mutations)


@pytest.mark.parametrize("mutation", mutations.MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_applies_once_and_names_existing_tests(mutation):
    assert (ROOT / mutation.path).read_text().count(mutation.old) == 1, mutation.name
    assert mutation.old != mutation.new
    for test in mutation.tests:
        path, _, name = test.partition("::")
        assert (ROOT / path).is_file(), test
        if name:
            assert f"def {name}(" in (ROOT / path).read_text(), test


def test_mutation_names_are_unique():
    names = [m.name for m in mutations.MUTATIONS]
    assert len(names) == len(set(names))


def test_the_reliability_table_names_each_break_where_it_applies():
    """docs/reliability.md lists every break with the file the runner breaks."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    listed = dict(re.findall(r"^\| [^|]+ \| `([\w-]+)` in `([^`]+)` \|", text, flags=re.M))
    assert listed == {m.name: m.path for m in mutations.MUTATIONS}
