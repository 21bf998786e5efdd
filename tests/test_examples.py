"""The example service files and settings parse and fit the daemon's settings."""

from __future__ import annotations

import configparser
import plistlib
from pathlib import Path

from sidecar_thumbs.settings.fields import Settings
from sidecar_thumbs.settings.loading import load_settings

SERVICE = Path(__file__).resolve().parents[1] / "examples" / "service"


def test_launchd_plist_is_valid_and_has_what_a_mac_service_needs() -> None:
    with open(SERVICE / "com.example.sidecar-thumbs.plist", "rb") as f:
        plist = plistlib.load(f)
    assert plist["ProgramArguments"][1:] == ["watch"]
    # Started once the library's volume is there, not at boot before it is mounted; restarted after a crash.
    assert "RunAtLoad" not in plist and plist["StartOnMount"] is True
    root = str(load_settings(env_file=SERVICE / "env.local.example", environ={}).roots[0])
    assert plist["KeepAlive"] == {"PathState": {root: True}, "SuccessfulExit": False}
    assert plist["ThrottleInterval"] >= 10
    assert plist["SoftResourceLimits"]["NumberOfFiles"] >= 4096
    assert plist["UserName"] and plist["StandardErrorPath"]
    # Background would pin renders to the efficiency cores and throttle their reads (issue 12).
    assert plist["ProcessType"] in ("Standard", "Adaptive")
    # launchd must wait longer than the daemon's grace period before SIGKILL.
    assert plist["ExitTimeOut"] > Settings().grace_period


def test_launchd_log_is_one_the_daemon_reopens_and_newsyslog_rotates() -> None:
    with open(SERVICE / "com.example.sidecar-thumbs.plist", "rb") as f:
        plist = plistlib.load(f)
    log_file = plist["EnvironmentVariables"]["SIDECAR_THUMBS_LOG_FILE"]
    assert log_file != plist["StandardErrorPath"]  # launchd's own descriptor cannot be rotated
    lines = [
        line.split()
        for line in (SERVICE / "newsyslog.d" / "sidecar-thumbs.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    by_file = {fields[0]: fields for fields in lines}
    # logfilename [owner:group] mode count size when flags: the daemon's file, rotated without a signal.
    fields = by_file[log_file]
    assert fields[1] == f"{plist['UserName']}:staff" and int(fields[3]) >= 2 and "N" in fields[6]


def test_systemd_unit_restarts_on_failure_and_waits_for_the_grace_period() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(SERVICE / "sidecar-thumbs.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("sidecar-thumbs watch")
    assert service["Restart"] == "on-failure"
    assert float(service["TimeoutStopSec"]) > Settings().grace_period
    assert service["KillSignal"] == "SIGTERM"


def test_example_env_local_loads(tmp_path: Path) -> None:
    settings = load_settings(env_file=SERVICE / "env.local.example", environ={})
    assert [str(r) for r in settings.roots] == ["/Volumes/3D-Files/3D-Models"]
    assert settings.workers == 8 and settings.settle == 3.0


def test_linux_env_example_loads_with_the_service_paths() -> None:
    settings = load_settings(env_file=SERVICE / "env.linux.example", environ={})
    assert [str(r) for r in settings.roots] == ["/srv/3d-models"]
    # The database lives in the unit's StateDirectory (/var/lib/<name>), owned by its User.
    unit = (SERVICE / "sidecar-thumbs.service").read_text()
    assert "StateDirectory=sidecar-thumbs" in unit
    assert str(settings.database) == "/var/lib/sidecar-thumbs/state.sqlite3"


def test_newsyslog_rotates_the_log_file_the_plist_names_without_a_signal() -> None:
    with open(SERVICE / "com.example.sidecar-thumbs.plist", "rb") as f:
        plist = plistlib.load(f)
    log_file = plist["EnvironmentVariables"]["SIDECAR_THUMBS_LOG_FILE"]
    entries = {}
    for line in (SERVICE / "newsyslog.d" / "sidecar-thumbs.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            fields = line.split()
            assert len(fields) == 7, line  # name, owner:group, mode, count, size, when, flags
            entries[fields[0]] = fields
    # launchd keeps its StandardErrorPath open for the job's life: rotating it would send the lines
    # into the rotated copy. Only the file the daemon opens itself (and reopens) is rotated.
    assert set(entries) == {log_file} and log_file != plist["StandardErrorPath"]
    _, owner, mode, count, size, _when, flags = entries[log_file]
    assert owner.split(":")[0] == plist["UserName"]
    assert int(mode, 8) & 0o600 == 0o600 and int(count) > 0 and (size == "*" or int(size) > 0)
    assert "N" in flags  # no process to signal: the daemon reopens its log file itself
