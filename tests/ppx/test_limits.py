"""ppx.limits: the size caps and their setting from the environment."""

from __future__ import annotations

import re

import pytest

from ppx import limits


def test_default_cap_when_the_variable_is_unset_or_empty() -> None:
    assert limits.tensor_elements_from({}) == limits.DEFAULT_MAX_TENSOR_ELEMENTS == 2 ** 28
    assert limits.tensor_elements_from({limits.TENSOR_ELEMENTS_VARIABLE: " "}) == 2 ** 28


def test_cap_from_the_environment() -> None:
    assert limits.tensor_elements_from({limits.TENSOR_ELEMENTS_VARIABLE: "1000"}) == 1000


@pytest.mark.parametrize("text", ["0", "-5", "2**28", "many"])
def test_malformed_setting_names_the_variable_and_value(text: str) -> None:
    expected = f"PPX_MAX_TENSOR_ELEMENTS must be a positive integer, got '{text}'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        limits.tensor_elements_from({limits.TENSOR_ELEMENTS_VARIABLE: text})
