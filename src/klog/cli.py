"""The ``klog`` command line: topics, produce, consume, groups and benchmarks on a data directory.

Wrong input gets one clear line on stderr and exit status 1 (2 for usage errors), never a
traceback.
"""
import json
import os
import re
import sys
import time

import click
from rich.console import Console
from rich.table import Table

import klog
from klog.errors import KlogError

class _Out(Console):
    def on_broken_pipe(self):
        # rich would exit 1; let _guard stop quietly with status 0 (klog topic list | head -1).
        self.quiet = True
        raise BrokenPipeError


err = Console(stderr=True, soft_wrap=True)
# Piped output keeps whole column names (a terminal's width would truncate them).
out = _Out(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 250)


class Failure(click.ClickException):
    def show(self, file=None):
        err.print(f"[bold red]error:[/] {self.message}", highlight=False)


def _guard(fn):
    """Turn klog's and the OS's errors into one line and exit status 1."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            # The reader went away (klog consume | head): stop quietly, as kcat does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except (KlogError, ValueError, TypeError, OSError, KeyError) as exc:
            raise Failure(str(exc) or type(exc).__name__) from None
    return run


def _configs(pairs, what="config"):
    """['k=v', ...] → {k: v} (values stay strings: klog parses them like Kafka's tools do)."""
    config = {}
    for pair in pairs:
        if "=" not in pair:
            raise Failure(f"{what} {pair!r} is not key=value")
        k, v = pair.split("=", 1)
        config[k.strip()] = v.strip()
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", envvar="KLOG_DATA_DIR", default="./klog-data", show_default=True,
              help="broker data directory (env KLOG_DATA_DIR)")
@click.version_option(klog.__version__, prog_name="klog")
@click.pass_context
def cli(ctx, data_dir):
    """klog: a Kafka-style commit log, embedded."""
    ctx.obj = {"data_dir": data_dir}


def _broker(ctx, create=True):
    data_dir = ctx.obj["data_dir"]
    if not create and not os.path.isdir(data_dir):
        raise Failure(f"no klog data directory at {data_dir!r} (set --data-dir or KLOG_DATA_DIR)")
    broker = klog.open(data_dir)
    ctx.call_on_close(broker.close)
    return broker


# -- topics -----------------------------------------------------------------------------------------
@cli.group()
def topic():
    """Create, list, describe, alter and delete topics."""


@topic.command("create")
@click.argument("name")
@click.option("-p", "--partitions", type=click.IntRange(min=1), default=None, help="partition count")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE", help="topic config")
@click.pass_context
@_guard
def topic_create(ctx, name, partitions, configs):
    desc = _broker(ctx).create_topic(name, partitions, _configs(configs))
    out.print(f"created topic {desc.name} with {len(desc.partitions)} partition(s)")


@topic.command("list")
@click.option("--internal", is_flag=True, help="include internal topics")
@click.pass_context
@_guard
def topic_list(ctx, internal):
    broker = _broker(ctx, create=False)
    table = Table("TOPIC", "PARTITIONS", "RECORDS", "SIZE", box=None)
    for name in broker.list_topics(internal=internal):
        d = broker.describe_topic(name)
        table.add_row(name, str(len(d.partitions)),
                      str(sum(p.log_end_offset - p.log_start_offset for p in d.partitions)),
                      _size(sum(p.size for p in d.partitions)))
    out.print(table)


@topic.command("describe")
@click.argument("name")
@click.option("--all-configs", is_flag=True, help="show defaults too, not only overrides")
@click.pass_context
@_guard
def topic_describe(ctx, name, all_configs):
    broker = _broker(ctx, create=False)
    d = broker.describe_topic(name)
    out.print(f"NAME        {d.name}\nID          {d.topic_id}\nPARTITIONS  {len(d.partitions)}")
    table = Table("PARTITION", "LOG-START-OFFSET", "LOG-END-OFFSET", "SIZE", box=None)
    for p in d.partitions:
        table.add_row(str(p.partition), str(p.log_start_offset), str(p.log_end_offset), _size(p.size))
    out.print(table)
    shown = d.config if all_configs else broker.topic_overrides(name)
    if shown:
        cfg = Table("KEY", "VALUE", box=None)
        for k, v in sorted(shown.items()):
            cfg.add_row(k, str(v))
        out.print(cfg)


@topic.command("alter")
@click.argument("name")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE", help="set a config")
@click.option("-d", "--delete", "deletes", multiple=True, metavar="KEY", help="back to the default")
@click.option("-p", "--partitions", type=click.IntRange(min=1), default=None,
              help="grow to this many partitions")
@click.pass_context
@_guard
def topic_alter(ctx, name, configs, deletes, partitions):
    if not configs and not deletes and partitions is None:
        raise Failure("nothing to change: give -c KEY=VALUE, -d KEY or -p N")
    from klog.config import SETTINGS

    unknown = [k for k in deletes if k not in SETTINGS]
    if unknown:
        raise Failure(f"unknown config {unknown[0]!r}")
    broker = _broker(ctx, create=False)
    changes = _configs(configs)
    changes.update({k: None for k in deletes})
    current = broker.partition_count(name)
    if partitions is not None and partitions <= current:   # before any change is written
        raise Failure(f"topic {name!r} has {current} partitions; the new count {partitions} "
                      "must be larger (partitions can be added, never removed)")
    if changes:
        broker.alter_topic_config(name, changes)
    if partitions is not None:
        broker.add_partitions(name, partitions)
    out.print(f"altered topic {name}")


@topic.command("delete")
@click.argument("name")
@click.pass_context
@_guard
def topic_delete(ctx, name):
    _broker(ctx, create=False).delete_topic(name)
    out.print(f"deleted topic {name}")


# -- produce / consume ------------------------------------------------------------------------------
@cli.command()
@click.argument("topic_name", metavar="TOPIC")
@click.option("-K", "--key-delimiter", default=None, help="split each line into key DELIM value (like kcat -K)")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE", help="add a header to every record")
@click.option("-p", "--partition", type=click.IntRange(min=0), default=None)
@click.option("-z", "--compression", type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]), default="none")
@click.pass_context
@_guard
def produce(ctx, topic_name, key_delimiter, headers, partition, compression):
    """Produce lines from stdin, one record per line."""
    hdrs = [(k, v.encode()) for k, v in _configs(headers, "header").items()] or None
    if key_delimiter == "":
        raise Failure("-K needs a non-empty key delimiter")
    broker = _broker(ctx)
    if partition is not None:
        known = topic_name in broker.list_topics(internal=True)
        n_parts = broker.partition_count(topic_name) if known else broker.config["num.partitions"]
        if partition >= n_parts:
            raise Failure(f"topic {topic_name!r} has partitions 0..{n_parts - 1}, not {partition}"
                          if known else f"unknown topic {topic_name!r} (auto-created topics have "
                          f"partitions 0..{n_parts - 1}, not {partition})")
    producer = broker.producer({"compression.type": compression, "linger.ms": 50})
    count = 0
    batches = {}
    stdin = click.get_binary_stream("stdin")
    for raw in stdin:
        line = raw.rstrip(b"\r\n")
        key = None
        if key_delimiter is not None:
            delim = key_delimiter.encode()
            if delim in line:
                key, line = line.split(delim, 1)
        future = producer.send(topic_name, line, key=key, partition=partition, headers=hdrs)
        batches[id(future.batch)] = future   # a batch is appended (or refused) as a whole
        count += 1
    producer.close()
    # send() only queues: a refused append (a keyless record on a compacted topic, a record over
    # max.message.bytes) shows up on the futures, and must not be reported as produced.
    failed = [f.exception() for f in batches.values() if f.exception() is not None]
    if failed:
        raise Failure(f"records not written to {topic_name}: {failed[0]}")
    err.print(f"produced {count} record(s) to {topic_name}", highlight=False)


def _offset_spec(spec):
    """kcat's -o: beginning | end | N | -N (N before the end) | @timestamp_ms."""
    if spec in ("beginning", "end", "stored"):
        return spec, None
    if re.fullmatch(r"@-?[0-9]+", spec):
        return "time", int(spec[1:])
    if re.fullmatch(r"-?[0-9]+", spec):
        n = int(spec)
        return ("relative", n) if n < 0 else ("absolute", n)
    raise Failure(f"bad offset {spec!r}: use beginning, end, N, -N or @timestamp_ms")


FORMAT_CODES = re.compile(r"%[tpokKsSTh%]|\\[nt\\]")


def _render(fmt, r):
    def sub(m):
        c = m.group(0)
        return {
            "%t": r.topic, "%p": str(r.partition), "%o": str(r.offset), "%T": str(r.timestamp),
            "%k": _text(r.key), "%s": _text(r.value), "%K": str(len(r.key) if r.key is not None else -1),
            "%S": str(len(r.value) if r.value is not None else -1),
            "%h": ",".join(f"{k}={_text(v)}" for k, v in r.headers), "%%": "%",
            "\\n": "\n", "\\t": "\t", "\\\\": "\\",
        }[c]
    return FORMAT_CODES.sub(sub, fmt)


def _text(b):
    return "" if b is None else b.decode("utf-8", errors="backslashreplace")


@cli.command()
@click.argument("topic_name", metavar="TOPIC")
@click.option("-o", "--offset", "offset_spec", default="beginning", show_default=True,
              help="beginning, end, N, -N (from the end), @timestamp_ms")
@click.option("-p", "--partition", type=click.IntRange(min=0), default=None, help="only this partition")
@click.option("-e", "--exit", "exit_at_end", is_flag=True, help="exit at the end of the log")
@click.option("-c", "--count", type=click.IntRange(min=1), default=None, help="stop after N records")
@click.option("-f", "--format", "fmt", default=None, help="kcat-style format: %t %p %o %k %s %T %h %K %S")
@click.option("-g", "--group", default=None, help="consume as a member of this consumer group")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per record")
@click.pass_context
@_guard
def consume(ctx, topic_name, offset_spec, partition, exit_at_end, count, fmt, group, as_json):
    """Print records of TOPIC."""
    mode, arg = _offset_spec(offset_spec)
    broker = _broker(ctx, create=False)
    n_parts = broker.partition_count(topic_name)
    if partition is not None and partition >= n_parts:
        raise Failure(f"topic {topic_name!r} has partitions 0..{n_parts - 1}, not {partition}")
    consumer = broker.consumer(group, {"enable.auto.commit": "true" if group else "false",
                                       "auto.offset.reset": "earliest" if mode != "end" else "latest"})
    ctx.call_on_close(consumer.close)
    tps = [klog.TopicPartition(topic_name, p) for p in
           ([partition] if partition is not None else range(n_parts))]
    if group:
        consumer.subscribe([topic_name])
    else:
        consumer.assign(tps)
        _seek(consumer, broker, tps, mode, arg)
    shown = 0
    while True:
        records = consumer.poll(timeout_ms=200 if exit_at_end else 1000,
                                max_records=min(count - shown, 500) if count else None)
        for r in records:
            if as_json:
                line = json.dumps({"topic": r.topic, "partition": r.partition, "offset": r.offset,
                                   "timestamp": r.timestamp, "key": _text(r.key) if r.key is not None else None,
                                   "value": _text(r.value) if r.value is not None else None,
                                   "headers": {k: _text(v) for k, v in r.headers}})
            elif fmt is not None:
                line = _render(fmt, r)
                click.echo(line, nl=False)
                shown += 1
                if count and shown >= count:
                    return
                continue
            else:
                line = _text(r.value)
            click.echo(line)
            shown += 1
            if count and shown >= count:
                return
        if exit_at_end and not records and consumer.assignment() and \
                _at_end(consumer, broker, consumer.assignment()):
            return


def _seek(consumer, broker, tps, mode, arg):
    for tp in tps:
        log = broker.log(tp.topic, tp.partition)
        if mode == "beginning":
            consumer.seek(tp, log.log_start_offset)
        elif mode == "end":
            consumer.seek(tp, log.log_end_offset)
        elif mode == "absolute":
            consumer.seek(tp, min(max(arg, log.log_start_offset), log.log_end_offset))
        elif mode == "relative":
            consumer.seek(tp, max(log.log_start_offset, log.log_end_offset + arg))
        elif mode == "time":
            found = log.offset_for_time(arg)
            consumer.seek(tp, log.log_end_offset if found is None else found)


def _at_end(consumer, broker, assignment):
    return all(consumer.position(tp) >= broker.log(tp.topic, tp.partition).log_end_offset
               for tp in assignment)


# -- consumer groups -------------------------------------------------------------------------------
@cli.group()
def group():
    """List, describe and reset consumer groups."""


@group.command("list")
@click.pass_context
@_guard
def group_list(ctx):
    coordinator = _broker(ctx, create=False).group_coordinator
    table = Table("GROUP", "STATE", "PROTOCOL-TYPE", box=None)
    for g in coordinator.list_groups():
        table.add_row(g.group_id, g.state, g.protocol_type or "-")
    out.print(table)


def _group_rows(broker, group_id):
    """rpk's columns, one row per partition with a committed offset or an owner."""
    from klog.group.protocol import decode_assignment

    coordinator = broker.group_coordinator
    desc = coordinator.describe_groups([group_id])[0]
    owners = {}
    for m in desc.members:
        if m.assignment:
            try:
                for tp in decode_assignment(m.assignment).partitions:
                    owners[tp] = m
            except ValueError:
                pass
    fetched = coordinator.fetch_offsets(group_id)
    committed = {tp: c.offset for tp, c in fetched.offsets.items() if c.offset >= 0}
    rows = []
    for tp in sorted(set(committed) | set(owners)):
        try:
            log = broker.log(tp.topic, tp.partition)
        except KlogError:
            continue
        current = committed.get(tp)
        lag = log.log_end_offset - current if current is not None else None
        m = owners.get(tp)
        rows.append((tp.topic, tp.partition, current, log.log_start_offset, log.log_end_offset,
                     lag, m.member_id if m else "", m.client_id if m else ""))
    return desc, rows


@group.command("describe")
@click.argument("group_id", metavar="GROUP")
@click.pass_context
@_guard
def group_describe(ctx, group_id):
    broker = _broker(ctx, create=False)
    desc, rows = _group_rows(broker, group_id)
    if desc.state == "Dead" and not rows:
        raise Failure(f"unknown consumer group {group_id!r}")
    total = sum(r[5] for r in rows if r[5] is not None)
    out.print(f"GROUP        {group_id}\nSTATE        {desc.state}\nMEMBERS      {len(desc.members)}\n"
              f"TOTAL-LAG    {total}")
    table = Table("TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-START-OFFSET", "LOG-END-OFFSET",
                  "LAG", "MEMBER-ID", "CLIENT-ID", box=None)
    for t, p, cur, start, end, lag, member, client in rows:
        table.add_row(t, str(p), "-" if cur is None else str(cur), str(start), str(end),
                      "-" if lag is None else str(lag), member or "-", client or "-")
    out.print(table)


@group.command("reset-offsets")
@click.argument("group_id", metavar="GROUP")
@click.option("--topic", "topic_name", required=True, help="topic whose offsets to reset")
@click.option("--to-earliest", is_flag=True, help="to the log start")
@click.option("--to-latest", is_flag=True, help="to the log end")
@click.option("--to-offset", "to_offset", type=int, default=None, help="to this offset")
@click.option("--to-datetime", "to_time", type=int, default=None, metavar="TIMESTAMP_MS",
              help="to the first offset at or after this time")
@click.pass_context
@_guard
def group_reset_offsets(ctx, group_id, topic_name, to_earliest, to_latest, to_offset, to_time):
    """Reset a group's committed offsets (the group must have no active members)."""
    # Separate flags: sharing one destination let --to-earliest --to-latest pass (the last won).
    to = "earliest" if to_earliest else "latest" if to_latest else None
    chosen = [x for x in (to_earliest or None, to_latest or None, to_offset, to_time) if x is not None]
    if len(chosen) != 1:
        raise Failure("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime")
    broker = _broker(ctx, create=False)
    offsets = {}
    for p in range(broker.partition_count(topic_name)):
        log = broker.log(topic_name, p)
        if to == "earliest":
            target = log.log_start_offset
        elif to == "latest":
            target = log.log_end_offset
        elif to_offset is not None:
            target = min(max(to_offset, log.log_start_offset), log.log_end_offset)
        else:
            found = log.offset_for_time(to_time)
            target = log.log_end_offset if found is None else found
        offsets[klog.TopicPartition(topic_name, p)] = target
    errors = broker.group_coordinator.commit_offsets(group_id, "", -1, offsets)
    failed = {tp: code for tp, code in errors.items() if code}
    if failed:
        from klog.group.errors import error_for
        code = next(iter(failed.values()))
        raise Failure(f"cannot reset offsets of group {group_id!r}: {error_for(code)} "
                      "(stop its consumers first)")
    table = Table("TOPIC", "PARTITION", "NEW-OFFSET", box=None)
    for tp, off in sorted(offsets.items()):
        table.add_row(tp.topic, str(tp.partition), str(off))
    out.print(table)


# -- benchmarks -------------------------------------------------------------------------------------
@cli.group()
def bench():
    """Throughput and latency on this data directory (kafka-*-perf-test style output)."""


def _bench_topic(broker, topic_name, partitions):
    if topic_name not in broker.list_topics():
        broker.create_topic(topic_name, partitions, {"retention.ms": 3_600_000})
    return broker.partition_count(topic_name)


def _progress(total, what):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


@bench.command("produce")
@click.option("--topic", "topic_name", default="klog-bench", show_default=True)
@click.option("-n", "--records", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("-s", "--record-size", type=click.IntRange(min=0), default=100, show_default=True)
@click.option("-b", "--batch", type=click.IntRange(min=0), default=0, show_default=True,
              help="records per send_batch call (0: one send() per record)")
@click.option("-p", "--partitions", type=click.IntRange(min=1), default=1, show_default=True)
@click.pass_context
@_guard
def bench_produce(ctx, topic_name, records, record_size, batch, partitions):
    broker = _broker(ctx)
    _bench_topic(broker, topic_name, partitions)
    value = os.urandom(record_size)
    producer = broker.producer({"linger.ms": 5, "batch.size": 1 << 20})
    step = batch or 10_000
    with _progress(records, "producing") as progress:
        task = progress.add_task("produce", total=records)
        start = time.perf_counter()
        sent = 0
        while sent < records:
            n = min(step, records - sent)
            if batch:
                producer.send_batch(topic_name, [value] * n)
            else:
                send = producer.send
                for _ in range(n):
                    send(topic_name, value)
            sent += n
            progress.update(task, completed=sent)
        producer.flush()
        elapsed = time.perf_counter() - start
    producer.close()
    out.print(f"{records} records sent, {records / elapsed:.1f} records/sec "
              f"({records * record_size / elapsed / 2**20:.2f} MB/sec)")


@bench.command("consume")
@click.option("--topic", "topic_name", default="klog-bench", show_default=True)
@click.option("-n", "--records", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.pass_context
@_guard
def bench_consume(ctx, topic_name, records):
    broker = _broker(ctx, create=False)
    n_parts = broker.partition_count(topic_name)
    available = sum(broker.log(topic_name, p).log_end_offset - broker.log(topic_name, p).log_start_offset
                    for p in range(n_parts))
    if available < records:
        raise Failure(f"topic {topic_name!r} holds {available} records, fewer than {records}: "
                      "run 'klog bench produce' first or lower --records")
    consumer = broker.consumer(None, {"auto.offset.reset": "earliest"})
    consumer.assign([klog.TopicPartition(topic_name, p) for p in range(n_parts)])
    consumer.seek_to_beginning()
    got = nbytes = 0
    with _progress(records, "consuming") as progress:
        task = progress.add_task("consume", total=records)
        start = time.perf_counter()
        while got < records:
            batch = consumer.poll(1000, min(500, records - got))
            got += len(batch)
            nbytes += sum(len(r.value) for r in batch if r.value is not None)
            progress.update(task, completed=got)
        elapsed = time.perf_counter() - start
    consumer.close()
    mb = nbytes / 2**20
    out.print("data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec")
    out.print(f"{mb:.4f}, {mb / elapsed:.4f}, {got}, {got / elapsed:.4f}")


@bench.command("e2e")
@click.option("--topic", "topic_name", default="klog-bench-e2e", show_default=True)
@click.option("-n", "--records", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("-r", "--rate", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="records per second")
@click.pass_context
@_guard
def bench_e2e(ctx, topic_name, records, rate):
    """Producer thread -> consumer thread latency at a fixed rate."""
    import threading

    broker = _broker(ctx)
    _bench_topic(broker, topic_name, 1)
    producer = broker.producer({"linger.ms": 0})
    consumer = broker.consumer(None, {"max.poll.records": 10_000})
    consumer.assign([klog.TopicPartition(topic_name, 0)])
    consumer.seek_to_end()
    latencies = []

    def consume():
        while len(latencies) < records:
            for r in consumer.poll(200):
                latencies.append(time.perf_counter_ns() - int.from_bytes(r.value[:8], "big"))

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    pad = b"x" * 92
    per_tick = max(1, rate // 1000)
    start = time.perf_counter()
    sent = 0
    with _progress(records, "e2e") as progress:
        task = progress.add_task("e2e", total=records)
        while sent < records:
            for _ in range(min(per_tick, records - sent)):
                producer.send(topic_name, time.perf_counter_ns().to_bytes(8, "big") + pad)
            sent += per_tick
            progress.update(task, completed=min(sent, records))
            # Sleep even when behind (sleep(0)): a thread that never yields keeps the GIL from
            # the producer's sender thread for up to Python's 5 ms switch interval.
            time.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        reader.join(60)
    producer.close()
    consumer.close()
    lat = sorted(latencies)
    if not lat:
        raise Failure("no records came back")
    pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] / 1e6  # noqa: E731
    out.print(f"{len(lat)} records, {records / (time.perf_counter() - start):.1f} records/sec, "
              f"{sum(lat) / len(lat) / 1e6:.3f} ms avg latency, {lat[-1] / 1e6:.3f} ms max latency, "
              f"{pct(0.5):.3f} ms 50th, {pct(0.95):.3f} ms 95th, {pct(0.99):.3f} ms 99th, "
              f"{pct(0.999):.3f} ms 99.9th.")


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


@cli.command()
@click.option("--data-dir", "serve_data_dir", default=None,
              help="broker data directory (default: the global --data-dir)")
@click.option("--listen", default="127.0.0.1:9092", show_default=True, help="HOST:PORT to bind")
@click.option("--advertised-listener", default=None,
              help="HOST:PORT clients are told to connect to (default: the bound address)")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="broker setting, Kafka's names (num.partitions, auto.create.topics.enable, ...)")
@click.pass_context
@_guard
def serve(ctx, serve_data_dir, listen, advertised_listener, configs):
    """Serve the data directory over the Kafka wire protocol until SIGTERM/SIGINT."""
    import logging

    from klog.server import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(serve_data_dir or ctx.obj["data_dir"], listen, advertised_listener,
        _configs(configs, "broker setting") or None)


# -- klog run: functions wired to topics (klog.functions) -------------------------------------
@cli.command("run")
@click.argument("app_ref", metavar="MODULE:APP")
@click.option("--broker", default=None, metavar="TARGET",
              help="data directory (embedded) or kafka://HOST:PORT (default: KLOG_BROKER, the "
                   "config file's broker, then the global --data-dir)")
@click.option("--definition", default=None, help="functions to run, e.g. 'email|sms' or 'a;b'")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="bindings.<binding>.<property>=VALUE, default.<property>=VALUE, ...")
@click.option("--config", "config_file", default=None, metavar="FILE",
              help="config file (.properties, .toml, .json; default: KLOG_CONFIG)")
@click.option("--metrics-port", type=click.IntRange(min=0), default=None,
              help="serve Prometheus metrics on this port")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
@_guard
def run_app(ctx, app_ref, broker, definition, sets, config_file, metrics_port, log_level):
    """Run the functions of MODULE:APP (a klog.functions.App) until SIGTERM / SIGINT, then drain
    in-flight records, commit and exit."""
    import importlib
    import logging

    from klog.functions import App

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module_name, sep, attr = app_ref.partition(":")
    if not sep or not module_name or not attr:
        raise Failure(f"{app_ref!r}: expected MODULE:APP, e.g. message_service:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Failure(f"cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise Failure(f"{module_name}:{attr} is {type(app).__name__}, not a klog.functions.App")
    if broker is None and not os.environ.get("KLOG_BROKER") and config_file is None and \
            not os.environ.get("KLOG_CONFIG"):
        broker = ctx.obj["data_dir"]
    status = app.run(broker, definition, config_file=config_file, sets=list(sets),
                     metrics_port=metrics_port)
    sys.exit(status)


def main():
    cli(prog_name="klog")


if __name__ == "__main__":
    main()
