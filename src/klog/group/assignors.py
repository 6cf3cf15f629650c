"""Partition assignors: how a group leader splits the subscribed partitions among the members.

Same names and results as Kafka's client assignors (``clients/.../consumer/RangeAssignor.java``,
``RoundRobinAssignor.java``, ``CooperativeStickyAssignor.java``), so a klog member leading a
group with Java, librdkafka or kafka-python members hands out what their leader would have:

- ``range``: per topic, partitions in order split into contiguous ranges over the members that
  subscribe to it (sorted); the first ``n % members`` get one extra.
- ``roundrobin``: all partitions sorted by (topic, partition) dealt one at a time around the
  sorted members, skipping members not subscribed to the partition's topic.
- ``cooperative-sticky``: balanced (counts within one when subscriptions are equal) and keeps
  each member's owned partitions where it can. Cooperative: a partition moving from one member
  to another is given to nobody in this round; its owner revokes it and rejoins, and the next
  round assigns it (KIP-429).

Members are ordered as Java's ``MemberInfo``: static members (``group.instance.id``) first by
instance id, then dynamic members by member id.

Concurrency: assignors are stateless; ``assign`` may run on any thread.
"""
import difflib

from klog.errors import ConfigError
from klog.group.protocol import Assignment
from klog.structs import TopicPartition

EAGER = "eager"
COOPERATIVE = "cooperative"


def member_order(member_ids, instance_ids=None):
    """Java's MemberInfo order: static members by instance id first, then the rest by id."""
    instance_ids = instance_ids or {}

    def key(m):
        inst = instance_ids.get(m)
        return (0, inst, m) if inst is not None else (1, "", m)

    return sorted(member_ids, key=key)


class PartitionAssignor:
    """Base class. ``assign(partitions_per_topic, subscriptions, instance_ids)``:

    - ``partitions_per_topic``: {topic: partition count} for the subscribed topics that exist;
    - ``subscriptions``: {member_id: Subscription};
    - ``instance_ids``: {member_id: group.instance.id} for static members (optional).

    Returns {member_id: Assignment} with an entry for every member.
    """
    name = None
    rebalance_protocol = EAGER

    def subscription_user_data(self, topics):
        return None

    def assign(self, partitions_per_topic, subscriptions, instance_ids=None):
        raise NotImplementedError

    @staticmethod
    def _result(members, assigned):
        return {m: Assignment(sorted(assigned.get(m, ()))) for m in members}

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


class RangeAssignor(PartitionAssignor):
    name = "range"

    def assign(self, partitions_per_topic, subscriptions, instance_ids=None):
        members = member_order(subscriptions, instance_ids)
        assigned = {m: [] for m in members}
        for topic, count in sorted(partitions_per_topic.items()):
            consumers = [m for m in members if topic in subscriptions[m].topics]
            if not consumers:
                continue
            per, extra = divmod(count, len(consumers))
            for i, m in enumerate(consumers):
                start = per * i + min(i, extra)
                length = per + (1 if i < extra else 0)
                assigned[m].extend(TopicPartition(topic, p) for p in range(start, start + length))
        return self._result(members, assigned)


class RoundRobinAssignor(PartitionAssignor):
    name = "roundrobin"

    def assign(self, partitions_per_topic, subscriptions, instance_ids=None):
        members = member_order(subscriptions, instance_ids)
        assigned = {m: [] for m in members}
        topics = {m: set(subscriptions[m].topics) for m in members}
        wanted = set().union(*topics.values()) if topics else set()
        i = 0
        for topic in sorted(t for t in partitions_per_topic if t in wanted):
            for p in range(partitions_per_topic[topic]):
                # Every topic here has at least one subscriber, so this loop ends.
                while topic not in topics[members[i % len(members)]]:
                    i += 1
                assigned[members[i % len(members)]].append(TopicPartition(topic, p))
                i += 1
        return self._result(members, assigned)


class CooperativeStickyAssignor(PartitionAssignor):
    name = "cooperative-sticky"
    rebalance_protocol = COOPERATIVE

    def assign(self, partitions_per_topic, subscriptions, instance_ids=None):
        members = member_order(subscriptions, instance_ids)
        rank = {m: i for i, m in enumerate(members)}
        topics = {m: {t for t in subscriptions[m].topics if t in partitions_per_topic}
                  for m in members}
        owner = _valid_owners(members, subscriptions, topics, partitions_per_topic)
        assigned = {m: set() for m in members}
        for tp, m in owner.items():
            assigned[m].add(tp)

        eligible = {}
        for topic in sorted(set().union(*topics.values()) if topics else ()):
            subs = [m for m in members if topic in topics[m]]
            for p in range(partitions_per_topic[topic]):
                eligible[TopicPartition(topic, p)] = subs

        # Unowned partitions, hardest to place first, each to the least-loaded eligible member.
        for tp in sorted((tp for tp in eligible if tp not in owner),
                         key=lambda tp: (len(eligible[tp]), tp)):
            m = min(eligible[tp], key=lambda m: (len(assigned[m]), rank[m]))
            assigned[m].add(tp)

        _balance(members, rank, assigned, eligible)

        # Cooperative: a partition changing hands goes to nobody until its owner revoked it.
        for m in members:
            assigned[m] = {tp for tp in assigned[m] if owner.get(tp, m) == m}
        return self._result(members, assigned)


def _valid_owners(members, subscriptions, topics, partitions_per_topic):
    """{tp: member} from the members' ownedPartitions: a claim counts if the member still
    subscribes to the topic and the partition exists; the highest generation wins, and two
    claims in the same generation cancel out (neither can be trusted)."""
    owner, best, conflicted = {}, {}, set()
    for m in members:
        sub = subscriptions[m]
        for tp in sub.owned_partitions:
            if tp.topic not in topics[m] or not 0 <= tp.partition < partitions_per_topic[tp.topic]:
                continue
            gen = sub.generation_id
            if tp not in best or gen > best[tp]:
                best[tp] = gen
                owner[tp] = m
                conflicted.discard(tp)
            elif gen == best[tp] and owner.get(tp) != m:
                conflicted.add(tp)
    for tp in conflicted:
        owner.pop(tp, None)
    return owner


def _balance(members, rank, assigned, eligible):
    """Move partitions from the most-loaded members to eligible members holding at least two
    fewer, until no such move exists. Each move lowers the sum of squared counts, so it ends;
    with equal subscriptions it ends with counts within one of each other."""
    moved = True
    while moved:
        moved = False
        for hi in sorted(members, key=lambda m: (-len(assigned[m]), rank[m])):
            n = len(assigned[hi])
            for tp in sorted(assigned[hi], reverse=True):
                candidates = [m for m in eligible[tp] if len(assigned[m]) <= n - 2]
                if candidates:
                    lo = min(candidates, key=lambda m: (len(assigned[m]), rank[m]))
                    assigned[hi].discard(tp)
                    assigned[lo].add(tp)
                    moved = True
                    break
            if moved:
                break


ASSIGNORS = {cls.name: cls for cls in (RangeAssignor, RoundRobinAssignor, CooperativeStickyAssignor)}
# The Java class names Kafka configs use for the same assignors.
JAVA_NAMES = {
    "org.apache.kafka.clients.consumer.RangeAssignor": "range",
    "org.apache.kafka.clients.consumer.RoundRobinAssignor": "roundrobin",
    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor": "cooperative-sticky",
}


def assignors_from_config(value):
    """``partition.assignment.strategy`` (a comma-separated string, Kafka's or librdkafka's
    names, or a list of names / PartitionAssignor instances) → [PartitionAssignor], in order of
    preference."""
    items = [i for i in value.split(",") if i.strip()] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if isinstance(item, PartitionAssignor):
            out.append(item)
            continue
        name = JAVA_NAMES.get(str(item).strip(), str(item).strip())
        cls = ASSIGNORS.get(name)
        if cls is None:
            hint = difflib.get_close_matches(name, ASSIGNORS, n=1)
            raise ConfigError(
                f"partition.assignment.strategy: unknown assignor {name!r}; known: "
                + ", ".join(ASSIGNORS) + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        out.append(cls())
    if not out:
        raise ConfigError("partition.assignment.strategy: at least one assignor is required")
    if len({a.name for a in out}) != len(out):
        raise ConfigError(f"partition.assignment.strategy: {value!r} names an assignor twice")
    return out


__all__ = ["PartitionAssignor", "RangeAssignor", "RoundRobinAssignor",
           "CooperativeStickyAssignor", "ASSIGNORS", "assignors_from_config", "member_order",
           "EAGER", "COOPERATIVE"]
