"""The one rule that says which label is the disease (the positive class)."""

import numpy as np
import pytest

from sklearn_cxr._labels import resolve_positive_label


@pytest.mark.parametrize(
    "labels, expected",
    [
        (["NORMAL", "PNEUMONIA"], "PNEUMONIA"),
        (["PNEUMONIA"], "PNEUMONIA"),  # one class present
        (["normal", "pneumonia"], "pneumonia"),  # any case
        (["normal", "bacterial", "pneumonia"], "pneumonia"),
        (["healthy", "sick"], "sick"),
        (["Healthy", "Abnormal"], "Abnormal"),  # not the alphabetical second
        (["normal", "viral"], "viral"),
        (["negative", "positive"], "positive"),
        (["effusion", "No Finding"], "effusion"),
        ([0, 1], 1),
        ([1], 1),
        ([False, True], True),
        ([0.0, 1.0], 1.0),
        (np.array(["NORMAL", "PNEUMONIA"]), "PNEUMONIA"),
    ],
)
def test_rule(labels, expected):
    found = resolve_positive_label(labels)
    assert found == expected and type(found) is type(expected)


@pytest.mark.parametrize(
    "labels",
    [
        ["cat", "dog"],
        ["abnormal", "clear"],  # sorted second is "clear": never guessed
        ["normal", "healthy"],  # two no-disease names
        ["NORMAL"],
        ["normal", "bacterial", "viral"],
        [1, 2],
        ["0", "1"],  # strings are names, not indicators
    ],
)
def test_refuses_to_guess_and_says_how_to_name_it(labels):
    with pytest.raises(ValueError) as info:
        resolve_positive_label(labels)
    message = str(info.value)
    assert "Cannot tell which label is positive" in message
    assert "positive_label=" in message and "--pos-label" in message


def test_explicit_label_wins_and_is_checked():
    assert resolve_positive_label(["NORMAL", "PNEUMONIA"], "NORMAL") == "NORMAL"
    assert resolve_positive_label(["cat", "dog"], np.str_("cat")) == "cat"
    with pytest.raises(ValueError, match=r"positive_label='COVID' is not one of"):
        resolve_positive_label(["NORMAL", "PNEUMONIA"], "COVID")
