"""Static membership (KIP-345, ``group.instance.id``) in the GroupCoordinator: a restarted
member takes its old place without a rebalance, the old member id is fenced, and only session
expiry or LeaveGroup removes a static member. Real broker and timers; waits poll to deadlines."""
import time

from klog.group import errors as E
from klog.group.coordinator import COMPLETING_REBALANCE, PREPARING_REBALANCE, STABLE

PROTOCOLS = [("range", b"meta")]
T = 5.0


def join(c, member="", instance=None, session=10_000, rebalance=10_000, protocols=PROTOCOLS,
         require=True):
    return c.join_group("g", member, "consumer", protocols, session, rebalance, client_id="cli",
                        client_host="/127.0.0.1", group_instance_id=instance,
                        require_known_member_id=require)


def wait_for(predicate, what, timeout=T):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def form_static_group(c, instances=("a", "b"), session=10_000, rebalance=10_000):
    """A Stable group of static members; returns ({instance: member id}, generation, leader).
    Members whose answer came in before the others joined rejoin, as a client would.
    ``session``: one for all, or {instance: session}."""
    sessions = session if isinstance(session, dict) else dict.fromkeys(instances, session)
    futures = {i: join(c, instance=i, session=sessions[i], rebalance=rebalance) for i in instances}
    ids = {}
    deadline = time.monotonic() + T
    while True:
        for i, f in futures.items():
            if f.done():
                assert f.result().error == E.NONE, f.result()
                ids[i] = f.result().member_id
        results = [f.result() for f in futures.values() if f.done()]
        if len(results) == len(instances) and len({r.generation_id for r in results}) == 1 \
                and c.group_state("g")[0] == COMPLETING_REBALANCE:
            break
        if c.group_state("g")[0] == PREPARING_REBALANCE:
            for i, f in list(futures.items()):
                if f.done():
                    futures[i] = join(c, ids[i], i, session=sessions[i], rebalance=rebalance)
        assert time.monotonic() < deadline, "the static group did not form"
        time.sleep(0.005)
    leader, gen = results[0].leader_id, results[0].generation_id
    syncs = [c.sync_group("g", gen, m, {x: f"part-of-{x}".encode() for x in ids.values()}
                          if m == leader else None, group_instance_id=i)
             for i, m in ids.items()]
    assert all(f.result(T).error == E.NONE for f in syncs)
    assert c.group_state("g")[0] == STABLE
    return ids, gen, leader


def test_static_member_skips_member_id_required(coordinator):
    r = join(coordinator, instance="a").result(T)
    assert r.error == E.NONE and r.member_id.startswith("a-")


def test_restarted_static_member_gets_its_place_back_without_a_rebalance(coordinator):
    c = coordinator
    ids, gen, leader = form_static_group(c)
    follower = "a" if ids["a"] != leader else "b"
    old = ids[follower]
    r = join(c, instance=follower).result(T)       # the restarted process: no member id
    assert r.error == E.NONE
    assert r.member_id != old and r.member_id.startswith(follower + "-")
    assert r.generation_id == gen and r.leader_id == leader and r.members == ()
    state, generation, group_leader, members = c.group_state("g")
    assert (state, generation, group_leader) == (STABLE, gen, leader)
    assert sorted(members) == sorted([r.member_id, ids["a" if follower == "b" else "b"]])
    s = c.sync_group("g", gen, r.member_id, group_instance_id=follower).result(T)
    assert (s.error, s.assignment) == (E.NONE, f"part-of-{old}".encode())
    # The other member sees nothing happen.
    other = next(m for i, m in ids.items() if i != follower)
    other_instance = next(i for i in ids if i != follower)
    assert c.heartbeat("g", gen, other, other_instance) == E.NONE
    assert c.heartbeat("g", gen, r.member_id, follower) == E.NONE


def test_the_old_member_id_is_fenced(coordinator):
    c = coordinator
    ids, gen, _ = form_static_group(c)
    old = ids["a"]
    new = join(c, instance="a").result(T).member_id
    assert c.heartbeat("g", gen, old, "a") == E.FENCED_INSTANCE_ID
    assert c.sync_group("g", gen, old, group_instance_id="a").result(T).error == E.FENCED_INSTANCE_ID
    assert join(c, old, "a").result(T).error == E.FENCED_INSTANCE_ID
    assert c.commit_offsets("g", old, gen, {("__consumer_offsets", 0): 1},
                            group_instance_id="a") == {("__consumer_offsets", 0): E.FENCED_INSTANCE_ID}
    r = c.leave_group("g", [(old, "a")])
    assert [e for _, _, e in r.members] == [E.FENCED_INSTANCE_ID]
    assert c.group_state("g")[0] == STABLE       # none of that disturbed the group
    assert c.heartbeat("g", gen, new, "a") == E.NONE


def test_a_waiting_join_of_the_old_member_is_answered_fenced(coordinator):
    c = coordinator
    ids, gen, _ = form_static_group(c, session=10_000, rebalance=10_000)
    waiting = join(c, ids["a"], "a", protocols=[("range", b"changed")])   # starts a rebalance
    assert c.group_state("g")[0] == PREPARING_REBALANCE and not waiting.done()
    restarted = join(c, instance="a", protocols=[("range", b"changed")])
    assert waiting.result(T).error == E.FENCED_INSTANCE_ID
    rb = join(c, ids["b"], "b").result(T)           # everyone is back: the rebalance completes
    ra = restarted.result(T)
    assert ra.error == rb.error == E.NONE and ra.generation_id == rb.generation_id == gen + 1
    leader = ra if ra.members else rb
    assert sorted(m.member_id for m in leader.members) == sorted([ra.member_id, ids["b"]])


def test_restarted_leader_is_not_told_to_assign(coordinator):
    c = coordinator
    ids, gen, leader = form_static_group(c)
    leader_instance = next(i for i, m in ids.items() if m == leader)
    r = join(c, instance=leader_instance).result(T)
    # The old leader id: the new member does not take itself for the leader and assign again.
    assert r.error == E.NONE and r.leader_id == leader != r.member_id and r.members == ()
    assert c.group_state("g")[2] == r.member_id  # but it leads the next rebalance
    s = c.sync_group("g", gen, r.member_id, group_instance_id=leader_instance).result(T)
    assert s.assignment == f"part-of-{leader}".encode()


def test_restart_during_completing_rebalance_starts_over(coordinator):
    c = coordinator
    ids, gen, _ = form_static_group(c)
    fa, fb = join(c, ids["a"], "a", protocols=[("range", b"v2")]), join(c, ids["b"], "b")
    assert fa.result(T).error == fb.result(T).error == E.NONE
    assert c.group_state("g")[0] == COMPLETING_REBALANCE
    restarted = join(c, instance="a", protocols=[("range", b"v2")])
    assert c.group_state("g")[0] == PREPARING_REBALANCE
    rb = join(c, ids["b"], "b").result(T)
    assert restarted.result(T).generation_id == rb.generation_id == gen + 2


def test_leave_group_by_instance_id_rebalances(coordinator):
    c = coordinator
    ids, gen, _ = form_static_group(c)
    r = c.leave_group("g", [("", "a")])
    assert r.members == ((ids["a"], "a", E.NONE),)
    assert c.group_state("g")[0] == PREPARING_REBALANCE
    assert c.leave_group("g", [("", "nobody")]).members[0][2] == E.UNKNOWN_MEMBER_ID
    rb = join(c, ids["b"], "b").result(T)
    assert rb.generation_id == gen + 1 and [m.member_id for m in rb.members] == [ids["b"]]


def test_static_member_session_expiry_rebalances(coordinator):
    c = coordinator
    # a's session is 300 ms, b's 60 s: only a can expire, however slowly this test runs.
    ids, gen, _ = form_static_group(c, session={"a": 300, "b": 60_000})
    # b heartbeats; a went silent (a crashed process that never came back).
    wait_for(lambda: c.heartbeat("g", gen, ids["b"], "b") == E.REBALANCE_IN_PROGRESS,
             "a's session to expire")
    assert ids["a"] not in c.group_state("g")[3]
    assert join(c, ids["a"], "a", session=300).result(T).error == E.UNKNOWN_MEMBER_ID
    rb = join(c, ids["b"], "b", session=60_000).result(T)
    assert rb.generation_id == gen + 1


def test_static_member_missing_a_rebalance_is_kept(coordinator):
    """Only its session decides: a static member that does not rejoin within the rebalance
    timeout stays in the next generation (dynamic members are dropped)."""
    c = coordinator
    ids, gen, _ = form_static_group(c, rebalance=300)
    t0 = time.monotonic()
    rb = join(c, ids["b"], "b", protocols=[("range", b"v2")], rebalance=300).result(T)
    assert time.monotonic() - t0 >= 0.25                # waited for a until the timeout
    assert rb.generation_id == gen + 1
    assert ids["a"] in c.group_state("g")[3]


def test_embedded_consumer_fenced_by_a_second_one_with_its_instance_id(broker):
    """The fenced consumer's next poll raises FencedInstanceIdError (fatal, as Java's) instead
    of rejoining and fencing the newer one in turn."""
    import pytest

    broker.create_topic("t", 2)

    def consumer():
        c = broker.consumer("emb", {"group.instance.id": "same", "session.timeout.ms": 10_000,
                                    "heartbeat.interval.ms": 50})
        c.subscribe(["t"])
        return c

    def poll_until(c, cond, what):
        deadline = time.monotonic() + T
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            c.poll(20)

    first = consumer()
    poll_until(first, lambda: len(first.assignment()) == 2, "the first consumer's assignment")
    second = consumer()
    poll_until(second, lambda: len(second.assignment()) == 2, "the second consumer's assignment")
    deadline = time.monotonic() + T
    with pytest.raises(E.FencedInstanceIdError, match="same"):
        while time.monotonic() < deadline:
            first.poll(20)
    generation = broker.group_coordinator.group_state("emb")[1]
    for _ in range(10):                     # the newer one keeps its place, undisturbed
        second.poll(20)
    assert len(second.assignment()) == 2
    assert broker.group_coordinator.group_state("emb")[:2] == (STABLE, generation)
    second.close()
