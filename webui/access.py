"""Who may reach the web UI. It listens on 127.0.0.1 by default (pyproject.toml [tool.locust]);
serving it on any other interface requires ``--web-login`` with credentials from the environment
(``WEB_USERNAME``/``WEB_PASSWORD``), else Locust stops before serving anything (exit 2)."""

from __future__ import annotations

import hmac
import secrets
import sys

from flask import Blueprint, redirect, request, session, url_for
from flask_login import UserMixin, login_user
from locust import events

from config import get_settings, is_loopback_host


class Operator(UserMixin):
    def __init__(self, username: str):
        self.username = username

    def get_id(self) -> str:
        return self.username


def credentials() -> tuple[str, str] | None:
    return get_settings().web_credentials()


def refuse(message: str) -> None:
    print(f"web UI: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


@events.init.add_listener
def guard_web_ui(environment, **_kwargs) -> None:
    web_ui, opts = environment.web_ui, environment.parsed_options
    if web_ui is None or opts is None:
        return
    exposed = not is_loopback_host(opts.web_host)
    if opts.web_login and credentials() is None:
        refuse("--web-login needs WEB_USERNAME and WEB_PASSWORD in the environment")
    if exposed and not opts.web_login:
        if get_settings().web_ui_allow_unauthenticated:
            return  # e.g. inside a container whose port is published on the host's loopback only
        refuse(
            f"refusing to serve the UI on {opts.web_host or 'all interfaces'} without a login: anyone who "
            "reaches it can start load against your targets. Add --web-login with WEB_USERNAME and "
            "WEB_PASSWORD set, or keep --web-host 127.0.0.1"
        )
    if opts.web_login:
        _install_login(environment)


def _install_login(environment) -> None:
    web_ui, base = environment.web_ui, getattr(environment.parsed_options, "base_path", "") or ""
    key = get_settings().flask_secret_key
    web_ui.app.config["SECRET_KEY"] = key.get_secret_value() if key else secrets.token_hex(32)
    web_ui.login_manager.user_loader(Operator)
    web_ui.auth_args = {"username_password_callback": f"{base}/login_submit", "title": "Payment load suite"}
    blueprint = Blueprint("suite_auth", __name__, url_prefix=base)

    @blueprint.route("/login_submit", methods=["POST"])
    def login_submit():
        expected = credentials()
        user, password = request.form.get("username", ""), request.form.get("password", "")
        if (
            expected
            and hmac.compare_digest(user.encode(), expected[0].encode())
            and hmac.compare_digest(password.encode(), expected[1].encode())
        ):
            login_user(Operator(user))
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Invalid username or password"
        return redirect(url_for("locust.login"))

    web_ui.app.register_blueprint(blueprint)
