"""Container health check: exits 0 when http://127.0.0.1:PORT/PATH (default /readyz) answers 200."""

import sys
import urllib.request

port = sys.argv[1]
path = sys.argv[2] if len(sys.argv) > 2 else "/readyz"
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:  # noqa: BLE001 - any failure is "not healthy"
    sys.exit(1)
