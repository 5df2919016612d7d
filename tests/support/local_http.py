"""Requests from a test to the servers it started, without httpx's cost per call.

httpx's module functions (httpx.get, httpx.post, ...) build a new Client for every call,
and with it an SSL context that loads the CA bundle, whatever the URL's scheme: about
30 ms a request on a quiet machine and several times that on a loaded one, which polling
a server until it answers, or sending a few dozen writes, paid on every request. These
functions take the same arguments and give the same answers (httpx's Response and
errors), through one client shared by the whole run. It keeps no idle connection, so
each request still opens its own connection and closes it after the answer, as the
module functions did; httpx's Client is safe to share between threads.
"""

from __future__ import annotations

from typing import Any

import httpx

_CLIENT = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return _CLIENT.request(method, url, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def head(url: str, **kwargs: Any) -> httpx.Response:
    return request("HEAD", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def patch(url: str, **kwargs: Any) -> httpx.Response:
    return request("PATCH", url, **kwargs)
