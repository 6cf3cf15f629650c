"""partition.metadata: which topic incarnation a partition directory belongs to (KIP-516).

Kafka's PartitionMetadataFile format, two lines::

    version: 0
    topic_id: <topic id, URL-safe base64 of its 16 bytes, no padding>

Written atomically (temp, fsync, rename, fsync dir) when a partition is first opened for its
topic. The broker's metadata file is the authority on topic ids; this copy lets the broker tell
a directory left behind by a deleted topic (a crash between deleting the topic from the
metadata and removing its directories) from the live topic of the same name, and lets an
operator see which topic a directory held. A damaged file reads as "unknown" and is rewritten.
"""
import os
import shutil

from klog.metadata import topic_id_base64, topic_id_from_base64
from klog.storage.files import fsync_dir, write_atomic

FILE = "partition.metadata"
VERSION = 0


def read_topic_id(directory):
    """The topic id (UUID text) recorded in ``directory``, or None if the file is missing or
    not a valid version-0 partition.metadata."""
    try:
        with open(os.path.join(directory, FILE), "rb") as f:
            lines = f.read().decode("ascii").splitlines()
        fields = dict(line.split(": ", 1) for line in lines)
        if int(fields["version"]) != VERSION:
            return None
        return topic_id_from_base64(fields["topic_id"].strip())
    except (OSError, UnicodeDecodeError, ValueError, KeyError):
        return None


def write_topic_id(directory, topic_id):
    write_atomic(os.path.join(directory, FILE),
                 f"version: {VERSION}\ntopic_id: {topic_id_base64(topic_id)}\n".encode("ascii"))


def remove_stray(directory, topic_id, suffix):
    """Before opening ``directory`` for topic ``topic_id``: if it names another topic id, it was
    left by a deleted incarnation of the topic; rename it to ``<dir>.<old id><suffix>`` (which
    the broker removes) so the new topic starts empty. Returns True if it did."""
    found = read_topic_id(directory)
    if found is None or found == topic_id:
        return False
    doomed = f"{directory}.{found}{suffix}"
    os.rename(directory, doomed)
    fsync_dir(os.path.dirname(directory) or ".")
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def ensure_topic_id(directory, topic_id):
    """Write partition.metadata unless it already names ``topic_id``."""
    if read_topic_id(directory) != topic_id:
        write_topic_id(directory, topic_id)
