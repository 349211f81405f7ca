"""The CLI tests reuse the evaluation tests' small hub export."""

from tests.evaluation.conftest import small_archive  # noqa: F401  (pytest fixtures)
from tests.evaluation.conftest import small_export  # noqa: F401
from tests.evaluation.conftest import small_preset  # noqa: F401
