"""Django REST framework itself, as the reference our Token auth and id routing must match.

A minimal Django (in-memory SQLite, DRF's authtoken app) answers a request built the way
Django builds one on an ASGI server: `ASGIRequest` from a scope, so Django's own header
joining applies, then Django's URL resolver and a DRF `APIView` with `TokenAuthentication`.
Roles are Django groups. The keys have our format (`write_side.domain.api_key`), but are
fixed so that a failing comparison names the same key on every run.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
from typing import Any

import django
from django.conf import settings

URL_PREFIX = "/api/customers/"
READ_ROLES = frozenset({"staff", "admin"})
WRITE_ROLES = frozenset({"producer", "admin"})


def key_like_ours(seed: str) -> str:
    """A fixed key shaped like `new_secret_key()`: 32 bytes as URL-safe base64, unpadded."""
    digest = hashlib.sha256(seed.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# Role -> key, stored as DRF Token rows (the user is in the group named after the role).
KEYS: dict[str, str] = {role: key_like_ours(role) for role in ("staff", "admin", "producer")}
# A key that is not ASCII: DRF decodes the header as UTF-8, and must then find this row.
NON_ASCII_STAFF_KEY = "clé-ключ-鍵"
# Revoked in our store; in DRF's terms a revoked key is a deleted Token row.
REVOKED_STAFF_KEY = key_like_ours("revoked staff")

# Django's URL configuration (ROOT_URLCONF is this module); filled in by `_django()`.
urlpatterns: list[Any] = []


@functools.cache
def _django() -> Any:
    """Configure Django once, migrate its in-memory database, add the reference keys.

    Returns Django's request handler (URL resolution, view, rendering; no middleware).
    """
    settings.configure(
        DEBUG=False,
        SECRET_KEY="reference only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "rest_framework.authtoken",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
        REST_FRAMEWORK={
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        },
    )
    django.setup()

    from django.contrib.auth.models import Group, User
    from django.core.handlers.base import BaseHandler
    from django.core.management import call_command
    from django.urls import path
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.authtoken.models import Token
    from rest_framework.permissions import BasePermission
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class HasRoleForMethod(BasePermission):
        """Reads need staff or admin, writes producer or admin (CONTRACT sections 2-3)."""

        def has_permission(self, request: Request, view: object) -> bool:
            user = request.user
            if user is None or not user.is_authenticated:
                return False
            roles = READ_ROLES if request.method in ("GET", "HEAD") else WRITE_ROLES
            return bool(user.groups.filter(name__in=roles).exists())

    class CustomerView(APIView):
        authentication_classes = [TokenAuthentication]
        permission_classes = [HasRoleForMethod]

        def get(self, request: Request, pk: int) -> Response:
            return Response({"id": pk})

        def post(self, request: Request, pk: int) -> Response:
            return Response({"id": pk})

    urlpatterns[:] = [path("api/customers/<int:pk>", CustomerView.as_view())]

    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    rows = [*KEYS.items(), ("staff", NON_ASCII_STAFF_KEY)]
    for number, (role, key) in enumerate(rows):
        user = User.objects.create_user(username=f"{role}-{number}")
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        Token.objects.create(user=user, key=key)

    handler = BaseHandler()
    handler.load_middleware()
    return handler


def _scope(headers: list[tuple[bytes, bytes]], method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }


def django_request(
    scope_headers: list[tuple[bytes, bytes]], method: str = "GET", path: str = URL_PREFIX + "1"
) -> Any:
    """Django's own request for these ASGI headers (its `META` holds the joined values)."""
    _django()
    from django.core.handlers.asgi import ASGIRequest

    return ASGIRequest(_scope(scope_headers, method, path), io.BytesIO(b""))


def django_authorization(scope_headers: list[tuple[bytes, bytes]]) -> str | None:
    """`HTTP_AUTHORIZATION` as Django puts it in `request.META` (latin-1 text), or None."""
    value: str | None = django_request(scope_headers).META.get("HTTP_AUTHORIZATION")
    return value


def drf_outcome(
    scope_headers: list[tuple[bytes, bytes]],
    method: str = "GET",
    path: str = URL_PREFIX + "1",
) -> tuple[int, str | None, str | None]:
    """(status, body `detail`, `WWW-Authenticate`) of DRF's answer to this request."""
    response = _django().get_response(django_request(scope_headers, method, path))
    body = json.loads(response.content) if response.content else {}
    detail = body.get("detail") if isinstance(body, dict) else None
    return response.status_code, detail, response.get("WWW-Authenticate")


def django_routes(segment: str) -> int | None:
    """The pk Django's `<int:pk>` route takes from this path segment, or None (no match)."""
    _django()
    from django.urls import Resolver404, resolve

    try:
        match = resolve(URL_PREFIX + segment)
    except Resolver404:
        return None
    pk: int = match.kwargs["pk"]
    return pk
