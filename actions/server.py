"""The action server: rasa-sdk's app, closed to everyone but our Rasa servers.

`python -m actions.server --actions actions --port 5055 [--interface ADDRESS]`
runs in place of `rasa run actions`, which listens on every interface, answers
anyone and accepts any content type. This one:

- listens on `ACTION_SERVER_INTERFACE` (default 127.0.0.1; a private address in a
  deployment where the Rasa servers are on other hosts);
- answers only requests with `Authorization: Bearer <token>`, the header Rasa
  sends from `action_endpoint.headers` in bot/endpoints*.yml (401 without it, 403
  with another token; `/health` stays open and says nothing but "ok");
- refuses bodies that are not JSON (415), so a web page cannot post a form or
  text/plain to it from a staff browser, and grants no CORS;
- never echoes the request (a tracker: the patient's messages) in an error.

The token is `settings.action_server_token` (ACTION_SERVER_TOKEN, else derived
from the secret key, so `make run` needs no setup); it is never on a command line.
"""
from __future__ import annotations

import argparse
import hmac
import logging
from typing import Optional

from rasa_sdk import utils
from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
from rasa_sdk.endpoint import create_app, create_argument_parser, create_ssl_context
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from painpath.settings import get_settings

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
JSON = "application/json"
MIN_TOKEN_LENGTH = 32


def refusal(request: Request, token: str) -> Optional[HTTPResponse]:
    """The answer to a request that may not reach rasa-sdk's routes, or None to let it in."""
    if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
        return None
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if not given:
        return response.json({"error": "authentication required"}, status=401,
                             headers={"WWW-Authenticate": "Bearer"})
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        logger.warning("action server: refused a call with a wrong token from %s",
                       request.ip)
        return response.json({"error": "forbidden"}, status=403)
    if request.method == "POST" and _media_type(request) != JSON:
        return response.json({"error": "JSON only"}, status=415)
    return None


def _media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


def build_app(action_package: str, token: str) -> Sanic:
    """rasa-sdk's app (its routes and executor, unchanged) behind `refusal`."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise SystemExit(f"ACTION_SERVER_TOKEN must be at least {MIN_TOKEN_LENGTH} characters")
    app = create_app(action_package, cors_origins=None)

    @app.on_request
    async def authenticate(request: Request) -> Optional[HTTPResponse]:
        return refusal(request, token)

    @app.exception(Exception)
    async def internal_error(request: Request, exception: Exception) -> HTTPResponse:
        # rasa-sdk's own handler puts the request body (the tracker) in the answer
        logger.error("action server error on %s", request.path, exc_info=exception)
        return response.json({"error": "internal error"}, status=500)

    return app


def argument_parser() -> argparse.ArgumentParser:
    """rasa-sdk's arguments, and the interface to listen on."""
    parser = create_argument_parser()
    parser.add_argument("--interface", default=None,
                        help="address to listen on (default: ACTION_SERVER_INTERFACE, "
                             "else 127.0.0.1)")
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    args = argument_parser().parse_args(argv)
    utils.configure_colored_logging(args.loglevel)
    utils.configure_file_logging(logging.getLogger(APPLICATION_ROOT_LOGGER_NAME),
                                 args.log_file, args.loglevel, args.logging_config_file)
    utils.update_sanic_log_level()
    settings = get_settings()
    app = build_app(args.actions or "actions", settings.action_server_token)
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    host = args.interface or settings.action_server_interface
    ssl = create_ssl_context(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    logger.info("action server on %s://%s:%s", "https" if ssl else "http", host, args.port)
    app.run(host, args.port, ssl=ssl, workers=utils.number_of_sanic_workers())


if __name__ == "__main__":
    main()
