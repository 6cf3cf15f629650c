"""meta.properties: a data directory belongs to one cluster and node."""
import pytest

from klog.cluster.meta import InconsistentBrokerMetadataError, check_or_write


def test_first_start_writes_then_checks(tmp_path):
    check_or_write(str(tmp_path), 3, "abc")
    assert (tmp_path / "meta.properties").read_text() == "version=0\nbroker.id=3\ncluster.id=abc\n"
    check_or_write(str(tmp_path), 3, "abc")


def test_other_cluster_is_refused(tmp_path):
    check_or_write(str(tmp_path), 3, "abc")
    with pytest.raises(InconsistentBrokerMetadataError, match="belongs to cluster abc, but "
                                                              "ZooKeeper's cluster is xyz"):
        check_or_write(str(tmp_path), 3, "xyz")


def test_other_node_id_is_refused(tmp_path):
    check_or_write(str(tmp_path), 3, "abc")
    with pytest.raises(InconsistentBrokerMetadataError, match="belongs to node 3, not --node-id 4"):
        check_or_write(str(tmp_path), 4, "abc")


@pytest.mark.parametrize("content,message", [
    (b"\xff\xfe", "not a text file"),
    (b"version=0\nbroker.id\n", "expected key=value"),
    (b"version=1\nbroker.id=3\ncluster.id=abc\n", "expected version=0"),
    (b"version=0\nbroker.id=three\ncluster.id=abc\n", "expected version=0"),
    (b"# Kafka writes a comment first\nversion=0\nbroker.id=3\n", "expected version=0"),
])
def test_damaged_file_is_a_clear_error(tmp_path, content, message):
    (tmp_path / "meta.properties").write_bytes(content)
    with pytest.raises(InconsistentBrokerMetadataError, match=message):
        check_or_write(str(tmp_path), 3, "abc")


def test_kafkas_own_file_is_accepted(tmp_path):
    (tmp_path / "meta.properties").write_text(
        "#\n#Mon Dec 07 06:00:00 UTC 2026\nversion=0\nbroker.id=3\ncluster.id=abc\n")
    check_or_write(str(tmp_path), 3, "abc")
