import pytest
from django.core.exceptions import ValidationError

from dashboard.models import Metric


def metric(**fields):
    return Metric(key="cpu", **fields)


def test_it_is_ok_without_thresholds():
    assert metric().level_for(99.0) == "ok"


def test_it_is_ok_below_the_warning_threshold():
    assert metric(warning_threshold=70, critical_threshold=90).level_for(69.9) == "ok"


def test_it_warns_at_the_warning_threshold():
    assert metric(warning_threshold=70, critical_threshold=90).level_for(70) == "warning"


def test_it_is_critical_at_the_critical_threshold():
    assert metric(warning_threshold=70, critical_threshold=90).level_for(90) == "critical"


def test_it_is_ok_for_a_missing_value():
    assert metric(warning_threshold=70).level_for(None) == "ok"


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
