"""The web UI in a real browser (Debian's chromium + chromium-driver, driven by Selenium): pick
classes, run 5 users against the sandbox, watch the numbers and the SLO tab fill, stop, download
the report; with a login, nothing without the password. Screenshots go to reports/."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
import requests

from tests.helpers import ROOT, free_port

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
SHOTS = ROOT / "reports"


def start_ui(sandbox, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full_env = {
        **os.environ,
        "PAYMENT_SERVICE_URL": sandbox.payment_url,
        "BANKING_API_URL": sandbox.bank_url,
        "MIN_WAIT_TIME": "100",
        "MAX_WAIT_TIME": "300",
        "THINK_TIME_SCALE": "0.02",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "locust"),
            "-f",
            "locustfile.py",
            "--class-picker",
            "--web-port",
            str(port),
            *args,
        ],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url + "/", timeout=1)
            return proc, url
        except requests.RequestException:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read()) from None
            time.sleep(0.2)
    raise RuntimeError("UI did not start")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    SHOTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def set_field(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.NAME, name)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(value)


def click_text(driver, tag: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    element = next(e for e in driver.find_elements(By.TAG_NAME, tag) if e.text.strip().upper() == text.upper())
    driver.execute_script("arguments[0].click();", element)


def test_ui_run_with_class_picker_live_slo_and_report(sandbox, browser):
    from selenium.webdriver.common.by import By

    proc, url = start_ui(sandbox)
    try:
        browser.get(url + "/")
        wait_for(lambda: "PaymentServiceUser" in browser.page_source, what="class picker")
        for cls in ("PaymentServiceUser", "BankingAPIUser", "FailureSimulationUser", "RealisticTrafficUser"):
            assert cls in browser.page_source
        # the token field is masked and empty: the token is never in the page
        token_field = browser.find_element(By.NAME, "authToken")
        assert token_field.get_attribute("type") == "password" and token_field.get_attribute("value") == ""
        assert "test_token_123456789" not in browser.page_source
        # pick classes: leave FailureSimulationUser out
        row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "tr") if "FailureSimulationUser" in r.text)
        browser.execute_script("arguments[0].click();", row.find_element(By.CSS_SELECTOR, "input[type=checkbox]"))
        set_field(browser, "userCount", "5")
        set_field(browser, "spawnRate", "5")
        browser.save_screenshot(str(SHOTS / "ui-1-start.png"))
        click_text(browser, "button", "Start")

        def total_requests() -> int:
            stats = requests.get(url + "/stats/requests", timeout=5).json()
            return sum(s["num_requests"] for s in stats["stats"] if s["name"] != "Aggregated")

        first = wait_for(total_requests, what="requests")
        wait_for(lambda: total_requests() > first + 20, what="the request count to rise")
        assert "user_count" in requests.get(url + "/stats/requests", timeout=5).json()
        names = [s["name"] for s in requests.get(url + "/stats/requests", timeout=5).json()["stats"]]
        assert not any(n.startswith("expect ") for n in names), "FailureSimulationUser was not picked"
        time.sleep(4)  # a few refreshes of the tables
        browser.save_screenshot(str(SHOTS / "ui-2-running.png"))
        click_text(browser, "button", "SLO")
        wait_for(lambda: "overall verdict" in browser.page_source, what="the SLO tab")
        wait_for(lambda: "PASS" in browser.find_element(By.TAG_NAME, "body").text, what="SLO results")
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "global p95 <= 500 ms" in body and "POST /payments p99 <= 500 ms" in body
        browser.save_screenshot(str(SHOTS / "ui-3-slo.png"))
        click_text(browser, "button", "Stop")
        wait_for(
            lambda: requests.get(url + "/stats/requests", timeout=5).json()["state"] == "stopped", what="stopped state"
        )
        report = requests.get(url + "/stats/report?download=1", timeout=30)
        assert report.status_code == 200 and "PaymentServiceUser" in report.text and "<html" in report.text.lower()
        (SHOTS / "ui-report.html").write_text(report.text)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_ui_with_login_is_closed_without_the_password(sandbox, browser):
    from selenium.webdriver.common.by import By

    proc, url = start_ui(sandbox, "--web-login", env={"WEB_USERNAME": "ops", "WEB_PASSWORD": "s3cret-pw"})
    try:
        assert requests.get(url + "/stats/requests", timeout=5, allow_redirects=False).status_code in (302, 401)
        assert requests.post(
            url + "/swarm", data={"user_count": 1, "spawn_rate": 1}, timeout=5, allow_redirects=False
        ).status_code in (302, 401)
        browser.get(url + "/")
        wait_for(lambda: browser.find_elements(By.NAME, "password"), what="login form")
        browser.find_element(By.NAME, "username").send_keys("ops")
        browser.find_element(By.NAME, "password").send_keys("wrong")
        click_text(browser, "button", "Login")
        wait_for(lambda: "Invalid username or password" in browser.page_source, what="login error")
        browser.save_screenshot(str(SHOTS / "ui-4-login-refused.png"))
        browser.find_element(By.NAME, "username").send_keys("ops")
        browser.find_element(By.NAME, "password").send_keys("s3cret-pw")
        click_text(browser, "button", "Login")
        wait_for(lambda: "PaymentServiceUser" in browser.page_source, what="the UI after login")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_exposed_ui_without_login_is_refused(sandbox):
    port = free_port()
    r = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "locust"),
            "-f",
            "locustfile.py",
            "--web-host",
            "0.0.0.0",
            "--web-port",
            str(port),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PAYMENT_SERVICE_URL": sandbox.payment_url},
    )
    assert r.returncode == 2 and "refusing to serve the UI on 0.0.0.0 without a login" in r.stderr
    r = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "locust"), "-f", "locustfile.py", "--web-login", "--web-port", str(port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("WEB_USERNAME", "WEB_PASSWORD")},
    )
    assert r.returncode == 2 and "WEB_USERNAME and WEB_PASSWORD" in r.stderr


def test_plain_locust_ui_listens_on_loopback_only(sandbox):
    proc, url = start_ui(sandbox)
    try:
        import psutil

        listening = [
            c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    finally:
        proc.terminate()
        proc.wait(timeout=20)
