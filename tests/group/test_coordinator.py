"""GroupCoordinator: Kafka's classic group state machine, driven through its request API the way
a wire client (or the embedded consumer) drives it. Real broker, real timers, short timeouts."""
import asyncio
import time

import pytest

import klog
from klog.group import errors as E
from klog.group.coordinator import (
    COMPLETING_REBALANCE, DEAD, EMPTY, PREPARING_REBALANCE, STABLE, _Group,
)
from klog.structs import OffsetAndMetadata, TopicPartition

PROTOCOLS = [("range", b"meta-range"), ("roundrobin", b"meta-rr")]
T = 5.0   # bound on every wait


def join(c, member="", group="g", protocols=PROTOCOLS, session=10_000, rebalance=10_000,
         ptype="consumer", client_id="cli", require=False):
    return c.join_group(group, member, ptype, protocols, session, rebalance, client_id=client_id,
                        client_host="/127.0.0.1", require_known_member_id=require)


def state(c, group="g"):
    return c.group_state(group)[0]


def wait_for(predicate, timeout=T, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def form_group(c, n, group="g", session=10_000, rebalance=10_000):
    """n members in a Stable group; returns (member ids, generation). ``session``: one for all,
    or a list with each member's."""
    sessions = session if isinstance(session, list) else [session] * n
    ids = []
    session_of = {}
    generation = None
    for k in range(n):
        # The ids come back newest first: the member made in round k is ids[n - 1 - k].
        new = sessions[n - 1 - k]
        futures = [join(c, group=group, session=new, rebalance=rebalance)]
        futures += [join(c, m, group=group, session=session_of[m], rebalance=rebalance)
                    for m in ids]
        results = [f.result(T) for f in futures]
        assert all(r.error == E.NONE for r in results), results
        session_of[results[0].member_id] = new
        ids = [r.member_id for r in results]
        generation = results[0].generation_id
        leader = results[0].leader_id
        syncs = {r.member_id: c.sync_group(group, generation, r.member_id,
                                           {m: m.encode() for m in ids} if r.member_id == leader else None)
                 for r in results}
        assert all(f.result(T).error == E.NONE for f in syncs.values())
    assert state(c, group) == STABLE
    return ids, generation


# -- JoinGroup -------------------------------------------------------------------------------------
def test_member_id_required_then_join_makes_a_generation(coordinator):
    first = join(coordinator, require=True, client_id="app").result(T)
    assert first.error == E.MEMBER_ID_REQUIRED
    assert first.member_id.startswith("app-")
    assert state(coordinator) == EMPTY   # a pending member does not start a rebalance

    r = join(coordinator, first.member_id, require=True).result(T)
    assert r.error == E.NONE
    assert (r.member_id, r.leader_id, r.generation_id) == (first.member_id, first.member_id, 1)
    assert r.protocol_type == "consumer" and r.protocol_name == "range"
    assert [(m.member_id, m.metadata) for m in r.members] == [(r.member_id, b"meta-range")]
    assert state(coordinator) == COMPLETING_REBALANCE

    s = coordinator.sync_group("g", 1, r.member_id, {r.member_id: b"mine"}).result(T)
    assert (s.error, s.assignment, s.protocol_name) == (E.NONE, b"mine", "range")
    assert state(coordinator) == STABLE


def test_join_errors(coordinator):
    assert join(coordinator, group="").result(T).error == E.INVALID_GROUP_ID
    assert join(coordinator, session=5).result(T).error == E.INVALID_SESSION_TIMEOUT
    assert join(coordinator, session=1_800_001).result(T).error == E.INVALID_SESSION_TIMEOUT
    # A member id this coordinator never gave out, for a group that does not exist / does.
    assert join(coordinator, "ghost").result(T).error == E.UNKNOWN_MEMBER_ID
    form_group(coordinator, 1)
    assert join(coordinator, "ghost").result(T).error == E.UNKNOWN_MEMBER_ID
    # Nothing to agree on.
    assert join(coordinator, group="h", protocols=[]).result(T).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert join(coordinator, group="h", ptype="").result(T).error == E.INCONSISTENT_GROUP_PROTOCOL


def test_inconsistent_protocol_type_or_protocols(coordinator):
    form_group(coordinator, 1)
    assert join(coordinator, ptype="connect").result(T).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert join(coordinator, protocols=[("sticky", b"")]).result(T).error == \
        E.INCONSISTENT_GROUP_PROTOCOL
    assert state(coordinator) == STABLE   # refused joins change nothing


def test_protocol_selected_by_votes_among_common_protocols(tmp_path):
    # An initial delay gathers the three joins into one generation.
    with klog.open(tmp_path, {"group.initial.rebalance.delay.ms": 100,
                              "offsets.topic.num.partitions": 1}) as b:
        c = b.group_coordinator
        futures = [join(c, protocols=[("roundrobin", b"a"), ("range", b"a"), ("x", b"")]),
                   join(c, protocols=[("range", b"b"), ("roundrobin", b"b")]),
                   join(c, protocols=[("range", b"c"), ("roundrobin", b"c")])]
        results = [f.result(T) for f in futures]
    # "x" is not supported by everyone; a votes roundrobin, b and c vote range.
    assert {r.protocol_name for r in results} == {"range"}
    assert {r.generation_id for r in results} == {1}
    (leader,) = [r for r in results if r.members]
    assert leader is results[0]                      # the first to join leads
    assert sorted(m.metadata for m in leader.members) == [b"a", b"b", b"c"]


def test_only_the_leader_gets_members_and_followers_wait_for_its_sync(coordinator):
    (a,), gen1 = form_group(coordinator, 1)
    fb = join(coordinator)                         # a new member: rebalance
    assert state(coordinator) == PREPARING_REBALANCE
    assert not fb.done()                           # held until every known member rejoins
    assert coordinator.heartbeat("g", gen1, a) == E.REBALANCE_IN_PROGRESS
    assert coordinator.sync_group("g", gen1, a).result(T).error == E.REBALANCE_IN_PROGRESS
    ra = join(coordinator, a).result(T)
    rb = fb.result(T)
    assert ra.generation_id == rb.generation_id == gen1 + 1
    assert ra.leader_id == rb.leader_id == a
    assert len(ra.members) == 2 and rb.members == ()
    assert state(coordinator) == COMPLETING_REBALANCE
    assert coordinator.heartbeat("g", ra.generation_id, rb.member_id) == E.NONE

    follower = coordinator.sync_group("g", rb.generation_id, rb.member_id)
    # Only the leader's sync (below) or a timer can complete it, and no timer is near.
    assert not follower.done()                     # waits for the leader
    leader = coordinator.sync_group("g", ra.generation_id, a, {a: b"A", rb.member_id: b"B"})
    assert leader.result(T).assignment == b"A"
    assert follower.result(T).assignment == b"B"
    assert state(coordinator) == STABLE
    # A Stable group answers a late sync with the stored assignment.
    assert coordinator.sync_group("g", rb.generation_id, rb.member_id).result(T).assignment == b"B"


def test_follower_rejoining_stable_group_with_same_metadata_does_not_rebalance(coordinator):
    (a, b), gen = form_group(coordinator, 2)
    follower = b if coordinator.group_state("g")[2] == a else a
    r = join(coordinator, follower).result(T)
    assert (r.error, r.generation_id, r.members) == (E.NONE, gen, ())
    assert state(coordinator) == STABLE
    # Changed metadata does rebalance.
    f = join(coordinator, follower, protocols=[("range", b"new")])
    assert state(coordinator) == PREPARING_REBALANCE
    assert not f.done()


def test_leader_rejoining_stable_group_rebalances(coordinator):
    (a, b), gen = form_group(coordinator, 2)
    leader = coordinator.group_state("g")[2]
    join(coordinator, leader)
    assert state(coordinator) == PREPARING_REBALANCE


def test_illegal_generation_and_unknown_member(coordinator):
    (a,), gen = form_group(coordinator, 1)
    assert coordinator.heartbeat("g", gen + 7, a) == E.ILLEGAL_GENERATION
    assert coordinator.sync_group("g", gen - 1, a).result(T).error == E.ILLEGAL_GENERATION
    assert coordinator.heartbeat("g", gen, "nobody") == E.UNKNOWN_MEMBER_ID
    assert coordinator.heartbeat("nogroup", gen, a) == E.UNKNOWN_MEMBER_ID
    assert coordinator.sync_group("g", gen, "nobody").result(T).error == E.UNKNOWN_MEMBER_ID
    assert coordinator.heartbeat("g", gen, a) == E.NONE
    tp = TopicPartition("t", 0)
    assert coordinator.commit_offsets("g", a, gen + 1, {tp: 1})[tp] == E.ILLEGAL_GENERATION
    assert coordinator.sync_group("g", gen, a, protocol_name="roundrobin").result(T).error == \
        E.INCONSISTENT_GROUP_PROTOCOL


def test_leave_rebalances_and_last_leave_empties_the_group(coordinator):
    (a, b), gen = form_group(coordinator, 2)
    result = coordinator.leave_group("g", [a, "stranger"])
    assert result.error == E.NONE
    assert [(m, err) for m, _, err in result.members] == [(a, E.NONE), ("stranger", E.UNKNOWN_MEMBER_ID)]
    assert state(coordinator) == PREPARING_REBALANCE
    r = join(coordinator, b).result(T)   # the only one left; completes at once
    assert (r.generation_id, r.leader_id) == (gen + 1, b)
    coordinator.sync_group("g", r.generation_id, b, {b: b""}).result(T)
    coordinator.leave_group("g", [b])
    s, generation, leader, members = coordinator.group_state("g")
    assert (s, generation, leader, members) == (EMPTY, gen + 2, None, ())
    assert coordinator.heartbeat("g", gen + 2, b) == E.UNKNOWN_MEMBER_ID


def test_leave_while_awaiting_join_answers_it_with_unknown_member(coordinator):
    (a, b), gen = form_group(coordinator, 2)
    fa = join(coordinator, a, protocols=[("range", b"changed")])
    assert not fa.done()
    coordinator.leave_group("g", [a])
    assert fa.result(T).error == E.UNKNOWN_MEMBER_ID


def test_session_expiry_removes_a_silent_member(coordinator):
    # a's session is 200 ms, b's 60 s: only a can expire, however slowly this test runs.
    (a, b), gen = form_group(coordinator, 2, session=[200, 60_000])
    # b heartbeats; a is silent and must be expired after ~200 ms.
    deadline = time.monotonic() + T
    while coordinator.heartbeat("g", gen, b) == E.NONE:
        assert time.monotonic() < deadline, "a was never expired"
        time.sleep(0.02)
    assert coordinator.heartbeat("g", gen, b) == E.REBALANCE_IN_PROGRESS
    r = join(coordinator, b, session=60_000).result(T)
    assert r.generation_id == gen + 1 and [m.member_id for m in r.members] == [b]
    assert coordinator.heartbeat("g", gen, a) == E.UNKNOWN_MEMBER_ID


def test_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout(coordinator):
    # A 1 s rebalance timeout: the two joins below are back to back, so both land within it
    # however slowly this test runs; only b's absence is decided by the timeout.
    (a, b), gen = form_group(coordinator, 2, rebalance=1000)
    t0 = time.monotonic()
    fc = join(coordinator, rebalance=1000)
    fa = join(coordinator, a, rebalance=1000)
    ra, rc = fa.result(T), fc.result(T)
    assert time.monotonic() - t0 >= 0.95           # waited for b until the rebalance timeout
    assert ra.generation_id == rc.generation_id == gen + 1
    leader = ra if ra.members else rc
    assert sorted(m.member_id for m in leader.members) == sorted([a, rc.member_id])
    assert coordinator.heartbeat("g", gen, b) == E.UNKNOWN_MEMBER_ID


def test_member_that_never_syncs_is_removed(coordinator):
    # 1 s: the joins and syncs below are back to back and land well within it.
    (a, b), gen = form_group(coordinator, 2, rebalance=1000)
    fc = join(coordinator, rebalance=1000)
    futures = [join(coordinator, m, rebalance=1000) for m in (a, b)]
    results = [f.result(T) for f in [fc] + futures]
    new_gen = results[0].generation_id
    leader = next(r for r in results if r.members)
    silent = next(r.member_id for r in results if r.member_id != leader.member_id)
    for r in results:
        if r.member_id != silent:
            coordinator.sync_group("g", new_gen, r.member_id,
                                   {m.member_id: b"x" for m in leader.members} if r is leader else None)
    wait_for(lambda: silent not in coordinator.group_state("g")[3], what="the silent member's removal")
    assert state(coordinator) == PREPARING_REBALANCE


def test_pending_member_expires_if_it_never_comes_back(coordinator):
    form_group(coordinator, 1)
    pending = join(coordinator, session=100, require=True).result(T)
    assert pending.error == E.MEMBER_ID_REQUIRED
    group = coordinator._group("g")   # (no public view of pending members)
    wait_for(lambda: pending.member_id not in group.pending_members, what="the pending expiry")
    assert join(coordinator, pending.member_id, session=100).result(T).error == E.UNKNOWN_MEMBER_ID


def test_initial_rebalance_delay_gathers_members_into_one_generation(tmp_path):
    # A delay long enough that the second join comes within it however slowly this test runs
    # (it is a timer away; the joins are back to back).
    with klog.open(tmp_path, {"group.min.session.timeout.ms": 10,
                              "group.initial.rebalance.delay.ms": 1000,
                              "offsets.topic.num.partitions": 1}) as b:
        c = b.group_coordinator
        t0 = time.monotonic()
        fa = join(c, rebalance=5000)
        assert not fa.done()
        fb = join(c, rebalance=5000)
        ra, rb = fa.result(T), fb.result(T)
        assert time.monotonic() - t0 >= 0.99
        assert ra.generation_id == rb.generation_id == 1
        assert len((ra.members or rb.members)) == 2


def test_group_state_transitions_follow_kafkas_table():
    g = _Group("g")
    with pytest.raises(RuntimeError, match="Empty -> Stable"):
        g.transition(STABLE)
    with pytest.raises(RuntimeError, match="Empty -> CompletingRebalance"):
        g.transition(COMPLETING_REBALANCE)
    for s in (PREPARING_REBALANCE, COMPLETING_REBALANCE, STABLE, PREPARING_REBALANCE, EMPTY, DEAD):
        g.transition(s)
    with pytest.raises(RuntimeError):
        g.transition(EMPTY)   # Dead is terminal


# -- offsets -----------------------------------------------------------------------------------------
def test_offset_commit_rules(broker, coordinator):
    broker.create_topic("t", 2)
    t0, t1 = TopicPartition("t", 0), TopicPartition("t", 1)
    # Standalone commits (no group management) create an Empty group.
    assert coordinator.commit_offsets("solo", "", -1, {t0: 5, t1: OffsetAndMetadata(7, "meta")}) == \
        {t0: E.NONE, t1: E.NONE}
    fetched = coordinator.fetch_offsets("solo", [t0, t1, TopicPartition("t", 9)]).offsets
    assert [(c.offset, c.metadata) for c in fetched.values()] == [(5, ""), (7, "meta"), (-1, "")]
    assert coordinator.commit_offsets("solo", "", -1, {("nope", 0): 1}) == \
        {("nope", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
    assert coordinator.commit_offsets("solo", "", -1, {t0: OffsetAndMetadata(1, "x" * 5000)}) == \
        {t0: E.OFFSET_METADATA_TOO_LARGE}
    assert coordinator.commit_offsets("unknown", "m", 3, {t0: 1}) == {t0: E.ILLEGAL_GENERATION}

    (a, b), gen = form_group(coordinator, 2)
    assert coordinator.commit_offsets("g", a, gen, {t0: 11}) == {t0: E.NONE}
    assert coordinator.commit_offsets("g", "", -1, {t0: 1}) == {t0: E.UNKNOWN_MEMBER_ID}
    join(coordinator)                                 # PreparingRebalance: members may commit
    assert coordinator.commit_offsets("g", b, gen, {t1: 12}) == {t1: E.NONE}
    futures = [join(coordinator, m) for m in (a, b)]
    new_gen = futures[0].result(T).generation_id      # now CompletingRebalance
    assert coordinator.commit_offsets("g", a, new_gen, {t0: 13}) == {t0: E.REBALANCE_IN_PROGRESS}
    assert {tp: c.offset for tp, c in coordinator.fetch_offsets("g").offsets.items()} == {t0: 11, t1: 12}


def test_list_describe_and_delete_groups(broker, coordinator):
    broker.create_topic("t", 1)
    (a,), gen = form_group(coordinator, 1)
    coordinator.commit_offsets("solo", "", -1, {("t", 0): 3})
    assert [(o.group_id, o.protocol_type, o.state) for o in coordinator.list_groups()] == \
        [("g", "consumer", STABLE), ("solo", "", EMPTY)]
    assert [o.group_id for o in coordinator.list_groups(states=["empty"])] == ["solo"]

    g, missing = coordinator.describe_groups(["g", "missing"])
    assert (g.state, g.protocol_type, g.protocol) == (STABLE, "consumer", "range")
    (m,) = g.members
    assert (m.member_id, m.client_id, m.client_host, m.metadata, m.assignment) == \
        (a, "cli", "/127.0.0.1", b"meta-range", a.encode())
    assert (missing.error, missing.state, missing.members) == (E.NONE, DEAD, ())

    assert coordinator.delete_groups(["g", "solo", "missing"]) == \
        {"g": E.NON_EMPTY_GROUP, "solo": E.NONE, "missing": E.GROUP_ID_NOT_FOUND}
    assert [o.group_id for o in coordinator.list_groups()] == ["g"]
    assert coordinator.fetch_offsets("solo", [("t", 0)]).offsets[("t", 0)].offset == -1


def test_describe_hides_metadata_while_rebalancing(coordinator):
    form_group(coordinator, 1)
    join(coordinator)
    (g,) = coordinator.describe_groups(["g"])
    assert g.state == PREPARING_REBALANCE and g.protocol == ""
    assert all(m.metadata == b"" and m.assignment == b"" for m in g.members)


def test_offsets_and_generation_survive_a_restart(tmp_path):
    config = {"group.min.session.timeout.ms": 10, "offsets.topic.num.partitions": 4}
    with klog.open(tmp_path, config) as b:
        b.create_topic("t", 1)
        c = b.group_coordinator
        (a,), gen = form_group(c, 1)
        c.commit_offsets("g", a, gen, {("t", 0): 42})
        c.commit_offsets("gone", "", -1, {("t", 0): 1})
        assert c.delete_groups(["gone"]) == {"gone": E.NONE}
        c.leave_group("g", [a])
        empty_gen = c.group_state("g")[1]
    with klog.open(tmp_path, config) as b:
        c = b.group_coordinator
        assert c.fetch_offsets("g", [("t", 0)]).offsets[("t", 0)].offset == 42
        assert c.group_state("g")[:2] == (EMPTY, empty_gen)
        assert [o.group_id for o in c.list_groups()] == ["g"]
        r = join(c).result(T)
        assert r.generation_id == empty_gen + 1       # generations keep growing


def test_expired_offsets_are_removed_and_the_group_deleted(broker, coordinator):
    broker.create_topic("t", 1)
    coordinator.commit_offsets("solo", "", -1, {("t", 0): 9})
    assert coordinator.expire_offsets() == 0
    week = broker.config["offsets.retention.minutes"] * 60_000
    assert coordinator.expire_offsets(now_ms=time.time() * 1000 + week + 1000) == 1
    assert coordinator.list_groups() == []
    assert coordinator.fetch_offsets("solo", [("t", 0)]).offsets[("t", 0)].offset == -1


def test_close_answers_waiting_requests(broker, coordinator):
    form_group(coordinator, 1)
    waiting = join(coordinator)
    coordinator.close()
    assert waiting.result(T).error == E.COORDINATOR_NOT_AVAILABLE
    assert join(coordinator).result(T).error == E.COORDINATOR_NOT_AVAILABLE
    assert coordinator.heartbeat("g", 1, "x") == E.COORDINATOR_NOT_AVAILABLE


def test_futures_work_from_asyncio_as_the_wire_server_will_use_them(coordinator):
    async def member():
        r = await asyncio.wrap_future(join(coordinator, require=True))
        assert r.error == E.MEMBER_ID_REQUIRED
        r = await asyncio.wrap_future(join(coordinator, r.member_id))
        s = await asyncio.wrap_future(coordinator.sync_group(
            "g", r.generation_id, r.member_id, {r.member_id: b"A"}))
        return r, s

    r, s = asyncio.run(asyncio.wait_for(member(), T))
    assert (r.error, s.error, s.assignment) == (E.NONE, E.NONE, b"A")


def test_unload_partition_hands_its_groups_to_the_new_coordinator(coordinator):
    """Cluster mode: a broker that stops leading an offsets partition drops that partition's
    groups (Kafka's removeGroupsForPartition): a waiting join is answered NOT_COORDINATOR (the
    client looks the coordinator up again), the group is neither listed nor described here, and
    its timers stop; groups of other partitions are untouched."""
    ids, _ = form_group(coordinator, 1)
    waiting = join(coordinator)              # a second member: waits for the first to rejoin
    other = next(g for g in (f"o{i}" for i in range(50))
                 if coordinator.partition_for(g) != coordinator.partition_for("g"))
    form_group(coordinator, 1, group=other, session=200)
    assert coordinator.unload_partition(coordinator.partition_for("g")) == 1
    assert waiting.result(T).error == E.NOT_COORDINATOR
    assert [g.group_id for g in coordinator.list_groups()] == [other]
    assert coordinator.describe_groups(["g"])[0].state == DEAD
    assert coordinator.heartbeat("g", 1, ids[0]) != E.NONE
    # The other group's member is still tracked: its session (200 ms) expires as usual.
    wait_for(lambda: state(coordinator, other) == EMPTY, what="the other group's member to expire")
