"""The broker's durable metadata: which topics exist, their partition counts, ids, configs and
leader epochs.

One JSON file, ``<data_dir>/klog-metadata.json``, rewritten atomically (temp → fsync → rename →
fsync dir) on every change, so after a crash it describes the topics before or after that change,
never a mix. Partition directories are created after the metadata names them and deleted after
the metadata stops naming them (renamed ``*.deleted`` first), so an interrupted create or delete
is finished on the next open.

Leader epochs never go back for a topic name, also when it is deleted and created again:
clients cache the epoch per partition and ignore metadata with an older one (KIP-320).
``leader_epoch_floor`` (saved in the same file) is one above the highest epoch of any deleted
topic, and a new topic's partitions start there. (Kafka starts a re-created topic at epoch 0
and relies on clients noticing its new topic id; a client that only compares epochs would
ignore the new topic's metadata. The floor serves both kinds.) A topic id, a fresh UUID per
creation, tells incarnations apart; each partition directory names it in ``partition.metadata``
(see klog.storage.partition_metadata).
"""
import base64
import json
import os
import re
import uuid
from dataclasses import dataclass, field

from klog.errors import ConfigError, CorruptLogError, InvalidTopicError
from klog.storage.files import write_atomic

FILE = "klog-metadata.json"
VERSION = 1
MAX_TOPIC_LENGTH = 249
LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
# Kafka's Topic.INTERNAL_TOPICS: the one list of internal topic names.
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def is_internal(name):
    """Whether ``name`` is one of the internal topics (hidden from listings, protected)."""
    return name in INTERNAL_TOPICS


def validate_topic_name(name):
    """Kafka's rules (Topic.validate): 1-249 of [a-zA-Z0-9._-], not '.' or '..'."""
    if not isinstance(name, str):
        raise InvalidTopicError(f"topic name must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidTopicError("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name cannot be {name!r}")
    if len(name) > MAX_TOPIC_LENGTH:
        raise InvalidTopicError(
            f"topic name is {len(name)} characters; the maximum is {MAX_TOPIC_LENGTH}")
    if not LEGAL.match(name):
        bad = sorted({c for c in name if not re.match(r"[a-zA-Z0-9._-]", c)})
        raise InvalidTopicError(
            f"topic name {name!r} has illegal characters {''.join(bad)!r}: "
            "only ASCII letters, digits, '.', '_' and '-' are allowed")


def collision_key(name):
    """'.' and '_' collide in Kafka's metric names, so Kafka refuses topics differing only there."""
    return name.replace(".", "_")


def new_topic_id():
    """A random topic id, as Kafka's Uuid.randomUuid: never one whose base64 form starts with
    '-' (it would read as an option on a command line)."""
    while True:
        u = uuid.uuid4()
        if not topic_id_base64(str(u)).startswith("-"):
            return str(u)


def topic_id_base64(topic_id):
    """Kafka's text form of a topic id: URL-safe base64 of its 16 bytes, no padding."""
    return base64.urlsafe_b64encode(uuid.UUID(topic_id).bytes).rstrip(b"=").decode("ascii")


def topic_id_from_base64(text):
    """The inverse of topic_id_base64; ValueError if ``text`` is not 16 bytes in base64url."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 16:
        raise ValueError(f"{text!r} is not a 16-byte topic id")
    return str(uuid.UUID(bytes=raw))


@dataclass
class TopicRecord:
    name: str
    partitions: int
    config: dict = field(default_factory=dict)   # overrides only, Kafka names → values
    topic_id: str = field(default_factory=new_topic_id)
    leader_epoch: int = 0                         # the epoch its partitions were created with
    # Cluster mode: the partitions this broker holds a replica of (sorted); None: all of them.
    local: list = None

    def to_json(self):
        doc = {"partitions": self.partitions, "config": self.config, "id": self.topic_id,
               "leader_epoch": self.leader_epoch}
        if self.local is not None:
            doc["local"] = self.local
        return doc

    def hosts(self, partition):
        """Whether this broker holds partition ``partition`` (an int in range)."""
        return 0 <= partition < self.partitions and (self.local is None or partition in self.local)

    def local_partitions(self):
        return range(self.partitions) if self.local is None else list(self.local)


class MetadataStore:
    def __init__(self, data_dir):
        self.path = os.path.join(data_dir, FILE)
        self.leader_epoch_floor = 0   # new topics start here; saved with the topics

    def retire_leader_epoch(self, epoch):
        """A topic whose partitions reached ``epoch`` is being deleted: a topic created later
        (same name or not) starts above it. Persisted by the next save()."""
        self.leader_epoch_floor = max(self.leader_epoch_floor, epoch + 1)

    def load(self):
        """{name: TopicRecord}; empty for a new data directory."""
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            return {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptLogError(f"{self.path}: broker metadata is not valid JSON ({exc})") from None
        try:
            if doc["version"] != VERSION:
                raise CorruptLogError(
                    f"{self.path}: metadata version {doc['version']}, this klog reads {VERSION}")
            self.leader_epoch_floor = int(doc.get("leader_epoch_floor", 0))
            return {name: TopicRecord(name, int(t["partitions"]), dict(t["config"]), t["id"],
                                      int(t.get("leader_epoch", 0)),
                                      None if t.get("local") is None
                                      else sorted(int(p) for p in t["local"]))
                    for name, t in doc["topics"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptLogError(f"{self.path}: malformed broker metadata ({exc!r})") from None

    def save(self, topics):
        doc = {"version": VERSION, "topics": {n: t.to_json() for n, t in sorted(topics.items())},
               "leader_epoch_floor": self.leader_epoch_floor}
        try:
            data = json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")
        except TypeError as exc:
            raise ConfigError(f"topic config values must be plain values: {exc}") from None
        write_atomic(self.path, data)
