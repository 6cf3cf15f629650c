"""``klog cluster status``: brokers, controller and partition health of a klog (or Kafka) cluster,
from a broker over the wire (``-b``) or from ZooKeeper (``--zookeeper``).

Exit status: 0 when every partition has a live leader, 3 when any is offline (of the
``--topic`` selection, whatever ``--under-replicated`` / ``--offline`` list), 2 when the brokers
or ZooKeeper do not answer or hold no cluster, 1 for other errors as in the rest of the CLI.
"""
import click

from klog.cli import Failure, _format_option, _guard, _json_out, _table, out

EXIT_UNREACHABLE = 2
EXIT_OFFLINE = 3


class ClusterUnreachable(Failure):
    exit_code = EXIT_UNREACHABLE


@click.group()
def cluster():
    """Look at a cluster of klog serve --zookeeper brokers (or Kafka)."""


@cluster.command("status")
@click.option("-b", "--brokers", "servers", default=None, metavar="HOST:PORT[,...]",
              help="ask these brokers (Kafka protocol); default: klog's global -b / KLOG_BROKERS")
@click.option("--zookeeper", default=None, metavar="HOST:PORT[,...][/chroot]",
              help="read ZooKeeper instead (read-only; chroot default /klog)")
@click.option("--topic", "topics", multiple=True, metavar="TOPIC",
              help="only these topics (repeat for more)")
@click.option("--internal", is_flag=True,
              help="list internal topics too (__consumer_offsets); they are always counted")
@click.option("--under-replicated", is_flag=True,
              help="list only partitions whose ISR is smaller than their replicas")
@click.option("--under-min-isr", is_flag=True,
              help="list only partitions with fewer in sync than min.insync.replicas "
                   "(acks=all refused) or no leader")
@click.option("--offline", is_flag=True,
              help="list only partitions with no live leader (unavailable)")
@click.option("--no-high-watermark", "no_hw", is_flag=True,
              help="with --zookeeper: do not ask the leaders for high watermarks")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="give up on brokers / ZooKeeper after this long")
@_format_option
@click.pass_context
@_guard
def cluster_status(ctx, servers, zookeeper, topics, internal, under_replicated, under_min_isr,
                   offline, no_hw, timeout, output_format):
    """Brokers, the controller, and per partition leader, replicas, ISR and high watermark;
    under-replicated (ISR < replicas), under min ISR (ISR < min.insync.replicas) and offline
    (no live leader) partitions flagged and counted (kafka-topics.sh's definitions).

    Exit status 3 when any partition is offline, 2 when nothing answered within --timeout."""
    from klog.cluster import status as cs
    from klog.metadata import is_internal

    if zookeeper and servers:
        raise click.UsageError("give either -b HOST:PORT or --zookeeper HOST:PORT, not both")
    if not zookeeper:          # klog -b / KLOG_BROKERS, unless ZooKeeper is asked for
        servers = servers or (ctx.obj or {}).get("brokers")
    if not zookeeper and not servers:
        raise click.UsageError("where is the cluster? give -b HOST:PORT (a broker) or "
                               "--zookeeper HOST:PORT[/chroot]")
    if no_hw and not zookeeper:
        raise click.UsageError("--no-high-watermark goes with --zookeeper (brokers always "
                               "know theirs)")
    try:
        if zookeeper:
            from klog.cluster.zkstore import parse_connect
            try:
                parse_connect(zookeeper)
            except ValueError as exc:
                raise Failure(str(exc)) from None
            status = cs.from_zookeeper(zookeeper, timeout, high_watermarks=not no_hw)
        else:
            servers = servers.split("://", 1)[1] if "://" in servers else servers
            status = cs.from_brokers(servers, timeout)
    except (cs.ClusterUnreachableError, cs.NoClusterError) as exc:
        raise ClusterUnreachable(str(exc)) from None
    if topics:
        missing = sorted(set(topics) - {p.topic for p in status.partitions})
        if missing:
            raise Failure(f"no topic {missing[0]!r} in the cluster ({status.source})")
        status.partitions = [p for p in status.partitions if p.topic in topics]
    listed = [p for p in status.partitions
              if (internal or topics or not is_internal(p.topic))
              and (not (under_replicated or under_min_isr or offline)
                   or (under_replicated and p.under_replicated)
                   or (under_min_isr and p.under_min_isr) or (offline and p.offline))]
    hidden = sorted({p.topic for p in status.partitions
                     if is_internal(p.topic) and not (internal or topics)})
    if hidden:
        status.notes.append(f"internal topics counted, not listed (--internal): "
                            f"{', '.join(hidden)}")
    if output_format == "json":
        _json_out(status.to_json(listed))
    else:
        _print_table(status, listed)
    ctx.exit(EXIT_OFFLINE if status.offline else 0)


def _ids(ids):
    return ",".join(map(str, ids)) or "-"


def _print_table(status, listed):
    controller = "none" if status.controller < 0 else str(status.controller)
    if status.controller_epoch is not None:
        controller += f" (epoch {status.controller_epoch})"
    out.print(f"cluster {status.cluster_id or '-'}  controller {controller}  "
              f"from {status.source}", highlight=False, markup=False)
    click.echo()
    with_epoch = any(b.epoch is not None for b in status.brokers)
    header = ["BROKER", "ADDRESS"] + (["EPOCH"] if with_epoch else []) + ["STATE"]
    rows = []
    for b in status.brokers:
        row = [b.id, f"{b.host}:{b.port}" if b.host is not None else "-"]
        if with_epoch:
            row.append("-" if b.epoch is None else b.epoch)
        rows.append(row + ["up" if b.alive else "down"])
    _table(header, rows)
    click.echo()
    rows = []
    unknown_hw = []
    for p in listed:
        if p.high_watermark is not None:
            hw = p.high_watermark
        else:
            hw = "-" if p.high_watermark_error == "not asked" else "?"
            if not p.offline and hw == "?":
                unknown_hw.append(f"{p.topic}/{p.partition}: {p.high_watermark_error}")
        state = ("offline" if p.offline else "under-min-isr" if p.under_min_isr
                 else "under-replicated" if p.under_replicated else "ok")
        replicas = _ids(p.replicas)
        if p.adding or p.removing:       # a reassignment in progress
            replicas += f" (+{_ids(p.adding)} -{_ids(p.removing)})"
        rows.append([p.topic, p.partition, p.leader if p.leader >= 0 else "none", p.leader_epoch,
                     replicas, _ids(p.isr), hw, state])
    _table(["TOPIC", "PARTITION", "LEADER", "LEADER-EPOCH", "REPLICAS", "ISR", "HW", "STATE"],
           rows)
    click.echo()
    for line in unknown_hw:
        click.echo(f"HW unknown for {line}")
    for note in status.notes:
        click.echo(f"note: {note}")
    s = status.summary()
    down = len(status.brokers) - s["brokers"]
    click.echo(f"{s['brokers']} broker(s) up" + (f", {down} down" if down else "")
               + f"; {s['topics']} topic(s), {s['partitions']} partition(s): "
               f"{s['under_replicated']} under-replicated, {s['under_min_isr']} under min ISR, "
               f"{s['offline']} offline")


def _broker_ids(text):
    """'2,3,4' -> (2, 3, 4); a clear usage error for anything else."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(p.isdigit() for p in parts):
        raise click.UsageError(f"--replicas {text!r}: expected broker ids like 2,3,4")
    ids = tuple(int(p) for p in parts)
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        raise click.UsageError(f"--replicas {text!r}: broker {dups[0]} is named twice")
    return ids


@cluster.command("reassign")
@click.option("-b", "--brokers", "servers", default=None, metavar="HOST:PORT[,...]",
              help="a broker of the cluster (it forwards to the controller); default: klog's "
                   "global -b / KLOG_BROKERS")
@click.option("--topic", default=None, metavar="TOPIC", help="the partition's topic")
@click.option("--partition", type=click.IntRange(min=0), default=None, metavar="N",
              help="the partition to move")
@click.option("--replicas", default=None, metavar="ID,ID,...",
              help="the brokers to move it to, the first the preferred leader")
@click.option("--cancel", is_flag=True, help="cancel the partition's move (back to its "
                                             "original replicas)")
@click.option("--list", "list_", is_flag=True, help="list the moves in progress")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              metavar="SECONDS", help="give up on the brokers after this long")
@_format_option
@click.pass_context
@_guard
def cluster_reassign(ctx, servers, topic, partition, replicas, cancel, list_, timeout,
                     output_format):
    """Move a partition's replicas to other brokers (Kafka's partition reassignment, KIP-455):
    the new replicas copy the data while the partition stays available; once they are in sync
    the leader moves if needed and the old replicas delete their copy. --cancel goes back to the
    original replicas; --list shows the moves in progress (REPLICAS while moving is the old and
    the new together).

    Exit status 2 when no broker answered within --timeout."""
    from klog.cluster import reassign_client as rc
    from klog.cluster.status import ClusterUnreachableError

    servers = servers or (ctx.obj or {}).get("brokers")
    if not servers:
        raise click.UsageError("where is the cluster? give -b HOST:PORT (a broker)")
    servers = servers.split("://", 1)[1] if "://" in servers else servers
    if list_:
        if replicas is not None or cancel or partition is not None:
            raise click.UsageError("--list goes alone (or with --topic to list one topic's)")
    else:
        if replicas is not None and cancel:
            raise click.UsageError("give --replicas or --cancel, not both")
        if replicas is None and not cancel:
            raise click.UsageError("give --replicas ID,ID,... (or --cancel, or --list)")
        if topic is None or partition is None:
            raise click.UsageError("give the partition to move: --topic TOPIC --partition N")
        replicas = None if cancel else _broker_ids(replicas)
    try:
        if list_:
            moves = [m for m in rc.list_moves(servers, timeout) if topic is None or m[0] == topic]
        else:
            rc.alter(servers, topic, partition, replicas, timeout)
    except ClusterUnreachableError as exc:
        raise ClusterUnreachable(str(exc)) from None
    if list_:
        if output_format == "json":
            _json_out([{"topic": t, "partition": p, "replicas": r, "adding": a, "removing": rm}
                       for t, p, r, a, rm in moves])
        else:
            _table(["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"],
                   [[t, p, _ids(r), _ids(a), _ids(rm)] for t, p, r, a, rm in moves])
        return
    what = "cancelled" if cancel else f"started: to {_ids(replicas)}"
    if output_format == "json":
        _json_out({"topic": topic, "partition": partition, "replicas": replicas,
                   "cancelled": cancel})
    else:
        click.echo(f"reassignment of {topic}/{partition} {what} (klog cluster reassign --list "
                   "shows it until it completes)")
