"""Signs in to a running demo's console as a clerk and a manager of 静安寺店 (SH001) and opens
every section, as a person would (standard library only):

    python demo/console_check.py --demo http://127.0.0.1:8000

A clerk opens the dashboard, counter sale, pickups, shipping, stock and sync health, and is
refused after-sales (403); the manager opens after-sales too. Exits 1 on any other answer.
"""

import argparse
import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "retail-demo-2026"  # noqa: S105 (the demo's published password)
CLERK_PAGES = ["dashboard", "pos", "pickups", "fulfilment", "stock", "sync"]


def signed_in(base: str, username: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/admin/login/?next=/console/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": PASSWORD,
            "next": "/console/",
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (the demo's own http URL)
        f"{base}/admin/login/?next=/console/", form, {"Referer": f"{base}/admin/login/"}
    )
    landing = opener.open(request, timeout=10)
    if "/console/SH001/" not in landing.url:
        raise SystemExit(f"{username}: signing in landed on {landing.url}")
    return opener


def status(opener: urllib.request.OpenerDirector, url: str) -> int:
    try:
        return opener.open(url, timeout=20).status
    except urllib.error.HTTPError as refused:
        return refused.code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="http://127.0.0.1:8000")
    base = parser.parse_args().demo.rstrip("/")
    expected = {
        "clerk_sh001": {**dict.fromkeys(CLERK_PAGES, 200), "aftersales": 403},
        "mgr_sh001": {**dict.fromkeys(CLERK_PAGES, 200), "aftersales": 200},
    }
    failures = []
    for username, pages in expected.items():
        opener = signed_in(base, username)
        for page, wanted in pages.items():
            url = f"{base}/console/SH001/{page}/"
            got = status(opener, url)
            if got != wanted:
                failures.append(f"{username} {url}: {got}, expected {wanted}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    print("console: clerk and manager of SH001 open their sections; a clerk is refused after-sales")
    return 0


if __name__ == "__main__":
    sys.exit(main())
