"""Which tests a task asks to have fixed (FAIL_TO_PASS "when asked").

A task asks for a test to be fixed when its title or body names the test:
its full JUnit name as ``QaResult.tests`` keys it (``classname::name``, say
``tests.test_x.TestY::test_z``), the same with a dot (``tests.test_x.TestY.
test_z``), or its last part (``test_z``) as a whole word. A parametrised
case (``test_z[1]``) is asked for by its own name or by its bare one.

Pure: text in, names out; ``qa_runner.judge_against_base`` uses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def short_name(test: str) -> str:
    """The last part of a test's JUnit name: ``test_z`` of
    ``tests.test_x::test_z``; a name without ``::`` is already one."""
    return test.rpartition("::")[2]


def _forms(test: str) -> list[str]:
    """The ways a task may write ``test``, longest first."""
    classname, sep, name = test.rpartition("::")
    forms = [test]
    if sep:
        forms.append(f"{classname}.{name}")
    forms.append(name)
    bare = name.partition("[")[0]
    if bare and bare != name:
        forms.append(bare)
    return list(dict.fromkeys(form for form in forms if form))


def _says(text: str, form: str) -> bool:
    # A whole word: no letter, digit or underscore just before or after, so
    # that `test_z` is not found in `test_zz` or `my_test_z`.
    return re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text) is not None


def asked_tests(asked: str, tests: Iterable[str]) -> list[str]:
    """The tests among ``tests`` (JUnit names) that the text ``asked``
    (a task's title and body) names, in the order given."""
    if not asked:
        return []
    return [test for test in tests if any(_says(asked, form) for form in _forms(test))]
