"""Template context every page needs: the viewer's theme, for `<html data-theme>`."""

from dashboard.models import UserPreference


def preferences(request):
    user = getattr(request, "user", None)
    return {"theme": UserPreference.theme_for(user)}
