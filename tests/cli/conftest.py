"""The CLI tests reuse the evaluation tests' small hub export."""

from tests.evaluation.conftest import small_export  # noqa: F401  (a pytest fixture)
