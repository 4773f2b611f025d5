"""Start Rasa with PainPath's secrets taken from the environment, not the command line.

`python -m bot.painpath_rasa.serve run --enable-api -m MODEL --endpoints … --port 5005`
is `rasa run …` plus:

- `--jwt-secret` / `--jwt-method HS256` for Rasa's HTTP API, added inside this
  process: the secret (`settings.rasa_jwt_secret`, derived from the secret key)
  never appears in `ps` (argv is read from /proc by anyone on the host; the
  environment only by the same user). Callers send a short-lived JWT in the
  Authorization header (painpath/rasa_client.py), never a token in a URL.
- `ACTION_SERVER_TOKEN` in Rasa's environment when unset, which the endpoints
  files put in the header of every call to the action server.

`--auth-token`, `--jwt-secret` and `--jwt-private-key` on the command line are
refused: they would put a credential where every local user can read it.
"""
from __future__ import annotations

import os
import sys

from rasa.__main__ import main as rasa_main

from painpath.settings import Settings, get_settings

REFUSED = ("--auth-token", "--jwt-secret", "--jwt-private-key")
JWT_METHOD = "HS256"


def rasa_argv(argv: list[str], settings: Settings) -> list[str]:
    """Rasa's argv for `argv` (what follows `rasa`): the JWT settings added to `run`."""
    given = [a for a in argv if a.split("=", 1)[0] in REFUSED]
    if given:
        raise SystemExit(f"{given[0].split('=', 1)[0]} would show a secret in `ps`: "
                         "the JWT secret comes from PAINPATH_SECRET_KEY")
    if argv[:1] == ["run"] and argv[1:2] != ["actions"]:
        return ["rasa", *argv, "--jwt-secret", settings.rasa_jwt_secret,
                "--jwt-method", JWT_METHOD]
    return ["rasa", *argv]


def main() -> None:
    settings = get_settings()
    os.environ.setdefault("ACTION_SERVER_TOKEN", settings.action_server_token)
    sys.argv = rasa_argv(sys.argv[1:], settings)
    rasa_main()


if __name__ == "__main__":
    main()
