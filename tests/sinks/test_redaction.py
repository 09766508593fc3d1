"""Sink URLs in errors: a password in a --sink URL never reaches the message."""

from __future__ import annotations

import pytest

from dbcost.errors import ConfigError
from dbcost.sinks import parse_sink_url


def test_sink_url_errors_never_show_the_password() -> None:
    """A bad --sink URL with a password is reported without it."""
    with pytest.raises(ConfigError) as info:
        parse_sink_url("postgresql://dbuser:S3cretPW@db.example:5432")
    assert "S3cretPW" not in str(info.value) and "***" in str(info.value)
