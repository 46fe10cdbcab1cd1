"""Start-up with bad settings: the process stops with a message that names the setting, and
never prints a secret setting's value (passwords in URLs, the secret key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Zq7xK9wPv3mR2tLs8nB4"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SMTP_URL": f"ftp://mailer:{PASSWORD}@mail.example:25"},
         "SMTP_URL must look like smtp://host:587 or smtps://host:465"),
        ({"SMTP_URL": f"smtp://mailer:{PASSWORD}@mail.example:587", "SECRET_KEY": "short"},
         "SECRET_KEY must be at least 32 characters long"),
        ({"DATABASE_URL": f"postgres://app:{PASSWORD}@db.example/dc",
          "ENVIRONMENT": "production"},
         "SECRET_KEY is required when ENVIRONMENT=production"),
        ({"SECRET_KEY": PASSWORD * 3, "ACCESS_TOKEN_LIFETIME": "soon"},
         "access_token_lifetime"),
    ],
)
def test_a_failed_start_up_never_prints_a_secret(tmp_path, env, message):
    environment = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SMTP_URL")}
    result = subprocess.run(
        [sys.executable, "-c", "from core.settings import get_settings; get_settings()"],
        cwd=tmp_path, env={**environment, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output, output
    # Not even a part of it (pydantic shortens long values to their two ends).
    assert not any(PASSWORD[i:i + 4] in output for i in range(len(PASSWORD) - 3)), output
