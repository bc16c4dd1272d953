"""Claims from the users file, and deliberate faults for the tests of the relying party.

IDP_USERS_FILE (JSON) is read on every token: {"users": {username: {"password",
"email", "email_verified", "groups"}}, "faults": {"nonce": text, "aud": text,
"expired": true}}. A test rewrites it between sign-ins to change a user's groups or
to make the next ID token wrong in one way."""

import json
import os
import time

from oauth2_provider.oauth2_validators import OAuth2Validator


def read_users_file():
    with open(os.environ["IDP_USERS_FILE"]) as file:
        return json.load(file)


class IdPValidator(OAuth2Validator):
    # Every claim whatever the scopes: the groups claim belongs to no standard scope.
    oidc_claim_scope = None

    def get_additional_claims(self, request):
        entry = read_users_file()["users"].get(request.user.username, {})
        return {
            "preferred_username": request.user.username,
            "email": entry.get("email", ""),
            "email_verified": bool(entry.get("email_verified", False)),
            "groups": list(entry.get("groups", [])),
        }

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        faults = read_users_file().get("faults", {})
        if "nonce" in faults:
            claims["nonce"] = faults["nonce"]
        if "aud" in faults:
            claims["aud"] = faults["aud"]
        if faults.get("expired"):
            claims["iat"] = int(time.time()) - 7200
            claims["exp"] = int(time.time()) - 3600
        return claims, expiration_time


class UsersFileBackend:
    """Signs in the users of IDP_USERS_FILE as it is now (a test may add one after start)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        from django.contrib.auth.models import User

        entry = read_users_file()["users"].get(username)
        if entry is None or password != entry["password"]:
            return None
        return User.objects.get_or_create(username=username)[0]

    def get_user(self, user_id):
        from django.contrib.auth.models import User

        return User.objects.filter(pk=user_id).first()
