"""One WeChat sandbox per test session, on a free port in a thread; every test talks to it over
a real socket and starts from a reset sandbox and a token store of its own."""

import uuid

import pytest
import requests

from wechat.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET, SandboxServer

LIN = "oSbx5t1_LinXiaomei00000000001"  # unionid, phone 13800138001
WANG = "oSbx5t1_WangDawei000000000002"  # unionid, phone 13900139002
CHEN = "oSbx5t1_ChenJing0000000000003"  # no unionid, phone 13700137003
ZHAO = "oSbx5t1_ZhaoLei0000000000004"  # unionid, no phone
RISKY = "oSbx5t1_RiskyUser00000000005"  # login refused (40226)


@pytest.fixture(scope="session")
def sandbox_server():
    server = SandboxServer().start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server):
    return sandbox_server.sandbox


@pytest.fixture(autouse=True)
def wechat_settings(settings, sandbox_server):
    """The client pointed at the sandbox, quick to retry, its token in this test's cache."""
    sandbox_server.sandbox.reset()
    settings.WECHAT_APP_ID = SANDBOX_APP_ID
    settings.WECHAT_APP_SECRET = SANDBOX_APP_SECRET
    settings.WECHAT_API_BASE_URL = sandbox_server.url
    settings.WECHAT_TIMEOUT_SECONDS = 2.0
    settings.WECHAT_RETRY_ATTEMPTS = 3
    settings.WECHAT_RETRY_BACKOFF_SECONDS = 0.01
    settings.WECHAT_STABLE_TOKEN = True
    settings.WECHAT_TOKEN_KEY_PREFIX = f"test-wechat-{uuid.uuid4().hex}"
    settings.WECHAT_MINIPROGRAM_STATE = "formal"
    # The Redis token store has tests of its own (test_client.py, with REDIS_URL set).
    settings.REDIS_URL = ""
    yield
    sandbox_server.sandbox.reset()


class SandboxHTTP:
    """Raw HTTP to the sandbox, as WeChat's clients and the shopper's phone would talk to it."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def get(self, path: str, /, **params) -> requests.Response:
        return self.http.get(self.url + path.lstrip("/"), params=params, timeout=5)

    def post(self, path: str, body=None, /, **params) -> requests.Response:
        return self.http.post(self.url + path.lstrip("/"), json=body, params=params, timeout=5)

    def token(self) -> str:
        answer = self.get(
            "/cgi-bin/token",
            grant_type="client_credential",
            appid=SANDBOX_APP_ID,
            secret=SANDBOX_APP_SECRET,
        ).json()
        return answer["access_token"]

    def js_code(self, openid: str) -> str:
        return self.post("/sandbox/codes", {"openid": openid}).json()["code"]

    def phone_code(self, openid: str) -> str:
        return self.post("/sandbox/phone-codes", {"openid": openid}).json()["code"]

    def fault(self, **spec) -> dict:
        response = self.post("/sandbox/faults", spec)
        assert response.status_code == 201, response.text
        return response.json()["fault"]

    def calls(self, path: str | None = None) -> list[dict]:
        params = {"path": path} if path else {}
        return self.get("/sandbox/calls", **params).json()["calls"]

    def allow(self, openid: str, template_id: str, times: int = 1) -> None:
        body = {"openid": openid, "template_id": template_id, "times": times}
        assert self.post("/sandbox/subscriptions", body).status_code == 200


@pytest.fixture
def wx(sandbox_server):
    return SandboxHTTP(sandbox_server.url)
