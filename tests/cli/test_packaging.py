"""What the packaging promises: an SPDX licence with its text, a build backend that reads it,
and a wheel-build test command that leaves out exactly the tests needing tools its containers
lack (kcat, java, root)."""
import os
import re
import subprocess
import sys

try:
    import tomllib
except ImportError:       # Python < 3.11
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_license_is_spdx_with_its_text():
    conf = pyproject()
    assert conf["project"]["license"] == "Apache-2.0"
    assert conf["project"]["license-files"] == ["LICENSE"]
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # PEP 639's license string needs setuptools 77.0.3 or later as the build backend
    (req,) = [r for r in conf["build-system"]["requires"] if r.startswith("setuptools")]
    version = tuple(int(x) for x in re.fullmatch(r"setuptools>=([0-9.]+)", req).group(1).split("."))
    assert version >= (77, 0, 3)


def test_kafka_extra_brings_the_readme_client():
    extras = pyproject()["project"]["optional-dependencies"]
    assert any(d.startswith("confluent-kafka") for d in extras["kafka"])


def _collect(*args):
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr     # 5: nothing collected
    return {line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line}, proc.stdout


def test_wheel_test_command_deselects_tests_needing_missing_tools():
    cbw = pyproject()["tool"]["cibuildwheel"]
    m = re.search(r'-m "([^"]+)"', cbw["test-command"])
    assert m and set(re.findall(r"not (\w+)", m.group(1))) == {"needs_kcat", "needs_root", "needs_java",
                                                                    "needs_zookeeper"}
    assert "*-musllinux_*" in cbw["skip"].split()
    needing = ["tests/server/test_kcat.py", "tests/faults/test_disk_full.py", "tests/cluster/test_zkstore.py"]
    files, _ = _collect(*needing)
    assert set(needing) <= files                     # they exist and collect ...
    files, out = _collect("-m", m.group(1), *needing)
    assert files <= {"tests/cluster/test_zkstore.py"}, out    # ... and the wheel command leaves them out
    assert "test_cluster_id_is_created_once" not in out and "test_parse_connect" in out
    _, out = _collect("-m", m.group(1), "tests/cli/test_kcat_habits.py", "tests/cli/test_serve_config.py")
    assert "test_json_envelopes_match_kcat" not in out and "test_parser_matches_java" not in out
    assert "test_json_envelope_fields" in out        # the rest of those files still runs
