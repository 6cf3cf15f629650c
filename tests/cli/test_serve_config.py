"""klog serve --config FILE: Kafka's server.properties format (java.util.Properties), mapped
onto klog's settings; -c and the flags win over the file."""
import os
import shutil
import signal
import socket
import subprocess

import pytest

import klog
from klog import properties

from .conftest import cli_env, failed, klog_cmd, wait_for_port

TRICKY = (
    "# a comment\n"
    "! also a comment\n"
    "   # an indented comment\n"
    "plain=1\n"
    "colon: two\n"
    "space three\n"
    "  spaced.key   =   padded value  \n"
    "empty=\n"
    "bare\n"
    "continued = first, \\\n"
    "            second, \\\n"
    "   third\n"
    "escaped\\=key\\:x = a\\tb\\nc\\\\d\\e\n"
    "unicode = caf\\u00e9 \\u2603\n"
    "utf8 = café\n"
    "even.backslashes = ends with two \\\\\n"
    "next.line = kept\n"
    "crlf = windows\r\n"
    "dup = old\n"
    "dup = new\n"
    "key\\ with\\ spaces = v\n"
    "tab\tseparated\n"
)


def _ours(text):
    got = {}
    for p in properties.parse(text.encode()):
        got[p.key] = p.value      # a later duplicate wins, as in Java
    return got


@pytest.mark.needs_java
def test_parser_matches_java_properties_load(tmp_path):
    """Oracle: java.util.Properties.load (through a UTF-8 reader) on the same bytes."""
    java = shutil.which("java")
    assert java, "java is not installed (apt-get install default-jdk-headless)"
    (tmp_path / "P.java").write_text(
        "import java.util.*; import java.io.*;\n"
        "public class P { public static void main(String[] a) throws Exception {\n"
        "  Properties p = new Properties();\n"
        "  p.load(new InputStreamReader(new FileInputStream(a[0]), \"UTF-8\"));\n"
        "  PrintStream out = new PrintStream(System.out, true, \"UTF-8\");\n"
        "  for (String k : new TreeSet<>(p.stringPropertyNames()))\n"
        "    out.print(k + \"\\u0000\" + p.getProperty(k) + \"\\u0000\");\n"
        "}}\n")
    (tmp_path / "t.properties").write_bytes(TRICKY.encode())
    proc = subprocess.run([java, str(tmp_path / "P.java"), str(tmp_path / "t.properties")],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    fields = proc.stdout.decode().split("\0")[:-1]
    java_view = dict(zip(fields[::2], fields[1::2]))
    assert _ours(TRICKY) == java_view
    assert java_view["continued"] == "first, second, third"   # the oracle saw the tricky parts


def test_parser_cases():
    got = _ours(TRICKY)
    assert got["plain"] == "1" and got["colon"] == "two" and got["space"] == "three"
    assert got["spaced.key"] == "padded value  "        # Java keeps trailing blanks of values
    assert got["empty"] == "" and got["bare"] == ""
    assert got["escaped=key:x"] == "a\tb\nc\\de"
    assert got["unicode"] == "café ☃" and got["utf8"] == "café"
    assert got["even.backslashes"] == "ends with two \\" and got["next.line"] == "kept"
    assert got["crlf"] == "windows" and got["dup"] == "new" and got["key with spaces"] == "v"
    lines = {p.key: p.line for p in properties.parse(TRICKY.encode())}
    assert lines["plain"] == 4 and lines["continued"] == 10 and lines["escaped=key:x"] == 13


@pytest.mark.parametrize("data, match", [
    (b"a=1\nbad = \\u12g4\n", r"^x\.properties:2: malformed \\uxxxx escape"),
    (b"a=1\n\nb=caf\xe9\n", r"^x\.properties:3: not UTF-8 \(byte 0xe9 at column 6\)"),
])
def test_parser_errors_name_the_line(data, match):
    with pytest.raises(properties.PropertiesSyntaxError, match=match):
        properties.parse(data, "x.properties")


# -- klog serve --config ----------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_reads_server_properties(tmp_path, cwd):
    """listeners → bind address, log.dirs → data directory, broker settings applied, -c wins
    over the file, Kafka settings klog ignores are a warning naming the line."""
    from kafka import KafkaProducer

    port = _free_port()
    data = tmp_path / "from-file"
    conf = tmp_path / "server.properties"
    conf.write_text(
        "# a stock Kafka file, trimmed\n"
        "node.id=1\n"
        "process.roles=broker,controller\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}\n"
        "num.network.threads=3\n"
        f"log.dirs={data}\n"
        "num.partitions=3\n"
        "log.retention.hours=168\n"
        "auto.create.topics.enable=\\\n    true\n")
    proc = subprocess.Popen(klog_cmd("serve", "--config", conf, "-c", "num.partitions=2"), cwd=cwd,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
        p.send("auto", b"x").get(timeout=20)
        assert p.partitions_for("auto") == {0, 1}           # -c num.partitions=2 beat the file's 3
        p.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {conf}:2: ignoring 'node.id': a Kafka setting klog does not use",
        f"warning: {conf}:3: ignoring 'process.roles': a Kafka setting klog does not use",
        f"warning: {conf}:5: ignoring 'num.network.threads': a Kafka setting klog does not use"]
    assert not (cwd / "klog-data").exists()                 # log.dirs was the data directory
    with klog.open(data) as broker:
        assert broker.partition_count("auto") == 2


@pytest.mark.parametrize("text, match", [
    ("num.partitons=3\n", r"server\.properties:1: unknown broker setting 'num\.partitons' "
                          r"\(did you mean 'num\.partitions'\?\)"),
    ("# c\nnum.partitions=lots\n", r"server\.properties:2: .*num\.partitions.*'lots'"),
    ("log.dirs=/a,/b\n", r"server\.properties:1: log\.dirs='/a,/b': klog stores everything in one"),
    ("listeners=SSL://:9093\n", r"server\.properties:1: listeners='SSL://:9093' has no PLAINTEXT"),
    ("listeners=PLAINTEXT://host\n", r"server\.properties:1: listeners: 'PLAINTEXT://host' has no port"),
])
def test_serve_config_errors_name_file_and_line(tmp_path, text, match):
    conf = tmp_path / "server.properties"
    conf.write_text(text)
    d = tmp_path / "data"
    failed(klog_run(["serve", "--config", conf], d), match=match)
    assert not d.exists()


def test_serve_config_missing_file(tmp_path):
    d = tmp_path / "data"
    failed(klog_run(["serve", "--config", tmp_path / "nope.properties"], d), code=2,
           match=r"nope\.properties.*does not exist")
    assert not d.exists()


def klog_run(args, data_dir):
    from .conftest import run

    return run(*args, data_dir=data_dir)


def test_readme_example_file(tmp_path):
    """The README's example file loads: mapped keys, one warning, nothing unknown."""
    import re

    from klog import server_properties

    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    assert "klog serve --config" in readme
    (block,) = re.findall(r"```properties\n(.*?)```", readme, re.S)
    (tmp_path / "klog.properties").write_text(block)
    got = server_properties.load(tmp_path / "klog.properties")
    assert (got.listen, got.advertised, got.data_dir) == ("127.0.0.1:9092", "localhost:9092", "/var/lib/klog")
    assert got.settings == {"num.partitions": "3", "log.retention.hours": "168"}
    assert len(got.warnings) == 1 and "'node.id'" in got.warnings[0]


def test_cluster_admin_settings_are_honoured_not_ignored(tmp_path):
    """The replication-factor and leader-rebalance settings (cluster mode) are broker settings:
    passed through and validated, never 'ignored' warnings."""
    from klog import server_properties

    conf = tmp_path / "server.properties"
    conf.write_text("offsets.topic.replication.factor=2\ndefault.replication.factor=2\n"
                    "auto.leader.rebalance.enable=false\n"
                    "leader.imbalance.check.interval.seconds=30\n"
                    "leader.imbalance.per.broker.percentage=20\n")
    got = server_properties.load(conf)
    assert got.warnings == []
    assert got.settings == {"offsets.topic.replication.factor": "2",
                            "default.replication.factor": "2",
                            "auto.leader.rebalance.enable": "false",
                            "leader.imbalance.check.interval.seconds": "30",
                            "leader.imbalance.per.broker.percentage": "20"}
    conf.write_text("default.replication.factor=0\n")
    with pytest.raises(server_properties.ServerPropertiesError, match=r"server\.properties:1"):
        server_properties.load(conf)
