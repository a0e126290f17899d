"""The container's HEALTHCHECK: exit 0 when the bot's ``/healthz`` answers 200, else 1 with the reason on stdout.

Runs in the image (``python /app/healthcheck.py``; ``python:3.12-slim`` has no curl), standard library only. It asks
``127.0.0.1`` on ``DISCOMFY_HTTP_PORT`` (the image sets 9464), or ``DISCOMFY_HTTP_HOST`` when that names one host
(not ``0.0.0.0`` / ``::``, which mean "every address"). Never waits more than ``TIMEOUT`` seconds.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT = 4.0


def healthz_url(environ: dict[str, str]) -> str:
    host = environ.get("DISCOMFY_HTTP_HOST", "").strip() or "127.0.0.1"
    if host in ("0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = environ.get("DISCOMFY_HTTP_PORT", "").strip() or "9464"
    return f"http://{host}:{port}/healthz"


def main() -> int:
    url = healthz_url(dict(os.environ))
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            print(f"{url}: {response.status}")
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:  # 503: the body says why
        print(f"{url}: {exc.code} {exc.read(500).decode('utf-8', 'replace')}")
    except (OSError, ValueError) as exc:
        print(f"{url}: {type(exc).__name__}: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
