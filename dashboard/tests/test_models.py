import pytest
from django.core.exceptions import ValidationError

from dashboard.models import Metric


def metric(**fields):
    return Metric(key="cpu", **fields)


# The level a value shows (ok / warning / critical) is the page's: see
# test_charts.py::test_it_colours_a_value_over_its_threshold.


def test_it_falls_back_to_the_key_without_a_label():
    assert str(metric()) == "cpu"
    assert str(metric(label="CPU")) == "CPU"


def test_it_refuses_a_warning_above_critical():
    with pytest.raises(ValidationError) as excinfo:
        metric(warning_threshold=95, critical_threshold=90).clean()
    assert "warning_threshold" in excinfo.value.message_dict


def test_it_accepts_a_warning_without_critical():
    metric(warning_threshold=95).clean()


@pytest.mark.django_db
def test_it_refuses_a_key_that_is_not_a_slug():
    with pytest.raises(ValidationError) as excinfo:
        Metric(key="not a slug!").full_clean()
    assert "key" in excinfo.value.message_dict


@pytest.mark.django_db
def test_it_refuses_a_key_longer_than_64_characters():
    with pytest.raises(ValidationError):
        Metric(key="k" * 65).full_clean()
