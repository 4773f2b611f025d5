"""A safety net for the logs: full phone numbers are masked in every log line.

PainPath's own log calls mask numbers already (:func:`painpath.phone.mask`) and
never log message bodies. This filter catches what they cannot control: text of
third-party exceptions and tracebacks (Twilio's errors name the number, e.g.
"The 'To' number +14155550123 is not a valid phone number"). It is installed
on the root logger's handlers of each process (web app, Rasa's channel, CLI).
"""
from __future__ import annotations

import logging
import re

from painpath.phone import mask

E164 = re.compile(r"\+[1-9]\d{7,14}(?!\d)")


def redact(text: str) -> str:
    """`text` with every E.164 number masked ('+1******0123')."""
    return E164.sub(lambda m: mask(m.group(0)), text)


class RedactPhones(logging.Filter):
    """Masks E.164 numbers in the message, its arguments and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        safe = redact(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


def install_phone_redaction() -> None:
    """Add the filter to every handler configured so far: the root logger's and
    those of loggers that do not propagate (uvicorn's, Sanic's), once each."""
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.Logger.manager.loggerDict.values())
        if isinstance(lg, logging.Logger) and lg.handlers]
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, RedactPhones) for f in handler.filters):
                handler.addFilter(RedactPhones())
