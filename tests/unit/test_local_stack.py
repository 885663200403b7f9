"""The local stack's settings: one state folder per provider endpoint, and a generated token that is kept."""

from __future__ import annotations

import hashlib
import stat

import pytest

from local.stack import TOKEN_FILE, LocalSettings, _banner, provider_state_dir

VARIABLES = ("JOBSYNC_API_TOKEN", "JOBSYNC_STATE_DIR", "REPLICATE_API_TOKEN", "REPLICATE_API_BASE_URL", "JOBSYNC_PORT")


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOBSYNC_STATE_DIR", str(tmp_path))
    return monkeypatch


def digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def test_the_simulator_and_each_replicate_endpoint_have_their_own_folder(env, tmp_path):
    assert LocalSettings.from_env().state_dir == tmp_path / "simulator"

    env.setenv("REPLICATE_API_TOKEN", "r8_x")
    default = LocalSettings.from_env()
    assert default.state_dir == tmp_path / f"replicate-{digest('https://api.replicate.com/v1')}"
    assert default.state_root == tmp_path

    env.setenv("REPLICATE_API_BASE_URL", "http://127.0.0.1:9999/v1/")
    other = LocalSettings.from_env()
    assert other.state_dir == tmp_path / f"replicate-{digest('http://127.0.0.1:9999/v1')}"
    assert len({LocalSettings.from_env().state_dir, default.state_dir, tmp_path / "simulator"}) == 3


def test_the_folder_depends_on_the_endpoint_not_on_the_token(tmp_path):
    url = "https://api.replicate.com/v1"
    assert provider_state_dir(tmp_path, "r8_a", url) == provider_state_dir(tmp_path, "r8_b", None)
    assert provider_state_dir(tmp_path, None, url) == tmp_path / "simulator"


def test_a_generated_token_is_kept_private_and_reused(env, tmp_path):
    first = LocalSettings.from_env()
    path = tmp_path / TOKEN_FILE
    assert first.token_origin == "generated" and len(first.api_token) >= 24
    assert path.read_text().strip() == first.api_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [name for name in tmp_path.iterdir() if name.name.startswith(".api-token-")]

    again = LocalSettings.from_env()
    assert (again.api_token, again.token_origin) == (first.api_token, "kept")

    # The token belongs to the dashboard, not to a provider: switching provider keeps it too.
    env.setenv("REPLICATE_API_TOKEN", "r8_x")
    assert LocalSettings.from_env().api_token == first.api_token


def test_a_loosened_token_file_is_tightened_and_an_unusable_one_replaced(env, tmp_path):
    path = tmp_path / TOKEN_FILE
    path.write_text("  kept-token\n")
    path.chmod(0o644)
    assert LocalSettings.from_env().api_token == "kept-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    path.write_text("two words\n")
    replaced = LocalSettings.from_env()
    assert replaced.token_origin == "generated" and replaced.api_token != "two words"
    assert path.read_text().strip() == replaced.api_token


def test_a_configured_token_wins_and_is_not_written(env, tmp_path):
    env.setenv("JOBSYNC_API_TOKEN", "chosen")
    settings = LocalSettings.from_env()
    assert (settings.api_token, settings.token_origin) == ("chosen", "environment")
    assert not (tmp_path / TOKEN_FILE).exists()

    (tmp_path / TOKEN_FILE).write_text("kept-token\n")
    assert LocalSettings.from_env().api_token == "chosen"
    assert (tmp_path / TOKEN_FILE).read_text() == "kept-token\n"


def test_the_banner_names_the_state_folder_and_where_the_token_is_kept(env, tmp_path):
    generated = _banner(LocalSettings.from_env(), True, "live")
    assert f"state       {tmp_path / 'simulator'}" in generated
    assert f"(generated and kept in {tmp_path / TOKEN_FILE};" in generated
    kept = _banner(LocalSettings.from_env(), True, "live")
    assert f"(generated earlier, kept in {tmp_path / TOKEN_FILE};" in kept

    env.setenv("JOBSYNC_API_TOKEN", "chosen")
    chosen = _banner(LocalSettings.from_env(), True, "live")
    assert "token       chosen\n" in chosen and "(generated" not in chosen
