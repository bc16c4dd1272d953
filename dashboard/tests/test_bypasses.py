"""One table says, for every middleware in settings.MIDDLEWARE, what stands in for it on
each path that bypasses Django's handler (dashboard.bypasses)."""

from dashboard import bypasses


def configured_middleware():
    from config import settings as config_settings

    # settings puts GripMiddleware first when GRIP_URL is set; the tests run without it.
    return ["django_grip.GripMiddleware", *config_settings.MIDDLEWARE]


def test_every_configured_middleware_has_a_row_for_every_bypass():
    assert bypasses.without_a_row(configured_middleware()) == []
    for path, row in bypasses.MIDDLEWARE_STAND_INS.items():
        assert all(row), f"{path}: say what stands in for it on every path"


def test_the_table_lists_no_middleware_the_settings_no_longer_have():
    assert set(bypasses.MIDDLEWARE_STAND_INS) - set(configured_middleware()) == set()


def test_a_middleware_added_to_the_settings_without_a_row_is_reported():
    added = [*configured_middleware(), "example.middleware.NewMiddleware"]

    assert bypasses.without_a_row(added) == ["example.middleware.NewMiddleware"]


def test_api_pushes_run_only_the_middlewares_marked_runs():
    chain = bypasses.api_push_chain(configured_middleware())

    assert chain == ["django_grip.GripMiddleware", "django.middleware.security.SecurityMiddleware"]
