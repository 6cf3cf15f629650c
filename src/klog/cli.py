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
from rich.markup import escape

import klog
from klog.delivery import Stdout
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
        err.print(f"[bold red]error:[/] {escape(self.message)}", highlight=False)


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
        except KeyboardInterrupt:
            # Ctrl-C is how a person stops klog consume: the shell's convention (128 + SIGINT),
            # without click's "Aborted!" or a traceback.
            sys.exit(130)
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
@click.option("-b", "--brokers", envvar="KLOG_BROKERS", default=None, metavar="HOST:PORT[,...]",
              help="talk to a running klog serve or Kafka cluster instead of a data directory "
                   "(env KLOG_BROKERS)")
@click.version_option(klog.__version__, prog_name="klog")
@click.pass_context
def cli(ctx, data_dir, brokers):
    """klog: a Kafka-style commit log, embedded."""
    ctx.obj = {"data_dir": data_dir, "brokers": brokers}


def _broker(ctx, create=True):
    if ctx.obj.get("brokers"):
        from klog.client.brokerview import BrokerView
        servers = ctx.obj["brokers"]
        servers = servers.split("://", 1)[1] if "://" in servers else servers
        view = BrokerView(klog.connect(f"kafka://{servers}"))
        ctx.call_on_close(view.close)
        return view
    data_dir = ctx.obj["data_dir"]
    _check_data_dir(data_dir, create)
    try:
        broker = klog.open(data_dir)
    except klog.errors.BrokerLockedError as exc:
        raise Failure(f"{exc}. If a klog serve owns it, go through the server: "
                      "klog -b HOST:PORT ...") from None
    ctx.call_on_close(broker.close)
    return broker


def _check_data_dir(data_dir, create):
    """Refuse, before anything is written, a path klog must not use: a file, or a directory
    klog never opened (a read-only command there would leave a .lock behind; a writing one would
    scatter topic directories among someone else's files). An empty directory is fine to create
    into."""
    if os.path.isdir(data_dir):
        entries = os.listdir(data_dir)
        if "klog-metadata.json" in entries or ".lock" in entries:
            return
        if not create:
            raise Failure(f"{data_dir!r} is not a klog data directory (no klog-metadata.json); "
                          "set --data-dir or KLOG_DATA_DIR to one")
        if entries:
            raise Failure(f"refusing to use {data_dir!r} as a data directory: it holds other "
                          "files and no klog-metadata.json")
    elif os.path.lexists(data_dir):
        raise Failure(f"data directory {data_dir!r} is a file, not a directory")
    elif not create:
        raise Failure(f"no klog data directory at {data_dir!r} (set --data-dir or KLOG_DATA_DIR)")


def _format_option(fn):
    return click.option("--format", "output_format", type=click.Choice(["table", "json"]),
                        default="table", show_default=True,
                        help="table for people, json (one document) for scripts")(fn)


def _table(header, rows):
    """Columns padded to their widest cell and never cut: a long topic name widens its column
    (a narrow terminal wraps the line) instead of becoming 'orders.p…'."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    for row in [header, *rows]:   # one space in, as rich's were: apart from "NAME  value" lines
        click.echo((" " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths))).rstrip())


def _json_out(doc):
    click.echo(json.dumps(doc, indent=1))


# -- topics -----------------------------------------------------------------------------------------
@cli.group()
def topic():
    """Create, list, describe, alter and delete topics."""


@topic.command("create")
@click.argument("name")
@click.option("-p", "--partitions", type=click.IntRange(min=1), default=None, help="partition count")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE", help="topic config")
@click.option("-r", "--replication-factor", type=click.IntRange(min=1), default=None,
              help="copies of each partition (a cluster, with -b; default the brokers' "
                   "default.replication.factor)")
@click.pass_context
@_guard
def topic_create(ctx, name, partitions, configs, replication_factor):
    if replication_factor not in (None, 1) and not ctx.obj.get("brokers"):
        raise Failure(f"replication factor {replication_factor}: a data directory is one broker "
                      "(give -b HOST:PORT of a klog serve --zookeeper cluster)")
    broker = _broker(ctx)
    if replication_factor is not None and ctx.obj.get("brokers"):
        desc = broker.create_topic(name, partitions, _configs(configs),
                                   replication_factor=replication_factor)
    else:
        desc = broker.create_topic(name, partitions, _configs(configs))
    out.print(f"created topic {desc.name} with {len(desc.partitions)} partition(s)")


@topic.command("list")
@click.option("--internal", is_flag=True, help="include internal topics")
@_format_option
@click.pass_context
@_guard
def topic_list(ctx, internal, output_format):
    broker = _broker(ctx, create=False)
    rows = []
    for name in broker.list_topics(internal=internal):
        d = broker.describe_topic(name)
        rows.append({"topic": name, "partitions": len(d.partitions),
                     "records": sum(p.log_end_offset - p.log_start_offset for p in d.partitions),
                     "size_bytes": sum(p.size for p in d.partitions)})
    if output_format == "json":
        return _json_out(rows)
    _table(["TOPIC", "PARTITIONS", "RECORDS", "SIZE"],
           [[r["topic"], r["partitions"], r["records"], _size(r["size_bytes"])] for r in rows])


@topic.command("describe")
@click.argument("name")
@click.option("--all-configs", is_flag=True, help="show defaults too, not only overrides")
@_format_option
@click.pass_context
@_guard
def topic_describe(ctx, name, all_configs, output_format):
    broker = _broker(ctx, create=False)
    d = broker.describe_topic(name)
    shown = d.config if all_configs else broker.topic_overrides(name)
    if output_format == "json":
        return _json_out({
            "topic": d.name, "id": str(d.topic_id),
            "partitions": [{"partition": p.partition, "log_start_offset": p.log_start_offset,
                            "log_end_offset": p.log_end_offset, "size_bytes": p.size}
                           for p in d.partitions],
            "config": {k: v for k, v in sorted(shown.items())}})
    click.echo(f"NAME        {d.name}\nID          {d.topic_id}\nPARTITIONS  {len(d.partitions)}")
    _table(["PARTITION", "LOG-START-OFFSET", "LOG-END-OFFSET", "SIZE"],
           [[p.partition, p.log_start_offset, p.log_end_offset, _size(p.size)] for p in d.partitions])
    if shown:
        click.echo()
        _table(["KEY", "VALUE"], [[k, v] for k, v in sorted(shown.items())])


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
@click.option("-K", "--key-delimiter", default=None,
              help="split each line into key DELIM value (like kcat -K; a line without DELIM has no key)")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE", help="add a header to every record")
@click.option("-p", "--partition", type=click.IntRange(min=0), default=None)
@click.option("-z", "--compression", type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]), default="none")
@click.pass_context
@_guard
def produce(ctx, topic_name, key_delimiter, headers, partition, compression):
    """Produce lines from stdin, one record per line.

    A line that cannot be stored (too large for max.message.bytes, no key for a compacted topic)
    is reported on stderr with its line number and the others are still written; the exit
    status is 1 if any line failed."""
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
    codec = None if compression == "none" else compression
    delim = key_delimiter.encode() if key_delimiter is not None else None
    producer = solo = None
    checker = None
    written = failed = 0
    in_flight = []          # (line number, future) not yet known to be stored
    stdin = click.get_binary_stream("stdin")

    def line_failed(lineno, message):
        nonlocal failed
        failed += 1
        err.print(f"[bold red]error:[/] {escape(f'line {lineno}: {message}')}", highlight=False)

    def settle(wait):
        """Count the futures that are done (all of them when ``wait``): the accumulator appends
        or refuses a batch as a whole, and a refusal is reported per line."""
        nonlocal written
        if wait:
            for p in (producer, solo):
                if p is not None:
                    p.flush()
        keep = []
        for lineno, future in in_flight:
            if not future.done():
                keep.append((lineno, future))
            elif future.exception() is None:
                written += 1
            else:
                line_failed(lineno, str(future.exception()))
        in_flight[:] = keep

    try:
        for lineno, raw in enumerate(stdin, 1):
            line = raw.rstrip(b"\r\n")
            key = None
            if delim is not None and delim in line:
                key, line = line.split(delim, 1)
            if producer is None:
                broker.ensure_topic(topic_name)         # auto-creates, as the first send would
                checker = _LineChecker(broker, topic_name, hdrs, codec)
                producer = broker.producer({"compression.type": compression, "linger.ms": 50,
                                            "batch.size": checker.batch_size,
                                            "max.request.size": checker.max_request})
                ctx.call_on_close(producer.close)
            problem = checker.problem(key, line, delim)
            if problem:
                line_failed(lineno, problem)
                continue
            target = producer
            if checker.bound(key, line) > checker.max_request:
                # Near the limit: alone in its own batch, after everything queued before it.
                if solo is None:
                    solo = broker.producer({"compression.type": compression, "linger.ms": 0,
                                            "batch.size": 1, "max.request.size": 2 * checker.max_bytes})
                    ctx.call_on_close(solo.close)
                producer.flush()
                target = solo
            try:
                in_flight.append((lineno, target.send(topic_name, line, key=key,
                                                      partition=partition, headers=hdrs)))
            except (KlogError, ValueError) as exc:   # the accumulator's own size check
                line_failed(lineno, str(exc))
                continue
            if len(in_flight) >= 10_000:
                settle(wait=False)
    finally:
        if producer is not None:
            settle(wait=True)
    if failed:
        raise Failure(f"{written} record(s) written to {topic_name}, {failed} line(s) failed")
    err.print(f"produced {written} record(s) to {topic_name}", highlight=False)


class _LineChecker:
    """What makes one stdin line unstorable, found before it joins a batch (the log refuses a
    batch as a whole, so one bad line would take good ones down with it)."""

    BATCH_OVERHEAD = 61         # RecordBatch v2 header
    RECORD_OVERHEAD = 30        # a record's varints and attributes, at most

    def __init__(self, broker, topic, headers, codec):
        config = broker.partition(topic, 0).config
        self.max_bytes = config.max_message_bytes
        self.compacted = "compact" in config.cleanup_policy
        self.topic = topic
        self.headers = headers
        self.codec = codec
        self.header_bytes = sum(len(k.encode()) + len(v) + 10 for k, v in headers or ())
        # The accumulator closes a batch before it would pass max.request.size: keeping that
        # under max.message.bytes (less the batch header and a codec's frame) means a batch of
        # good lines is never refused for its total size.
        self.max_request = max(1, self.max_bytes - self.BATCH_OVERHEAD - 64)
        self.batch_size = min(16384, self.max_request)

    def bound(self, key, value):
        return (self.BATCH_OVERHEAD + self.RECORD_OVERHEAD + len(value) + len(key or b"")
                + self.header_bytes)

    def problem(self, key, value, delim):
        if self.compacted and key is None:
            how = f"no key delimiter {delim.decode(errors='replace')!r} in the line" if delim \
                else "no key (give -K DELIM)"
            return f"{how}; topic {self.topic!r} is compacted and refuses records without a key"
        if self.bound(key, value) <= self.max_bytes:
            return None
        size = len(klog.encode_batch([value], keys=[key], headers=[self.headers],
                                     compression=self.codec))
        if size > self.max_bytes:
            return (f"record of {len(value)} bytes makes a batch of {size} bytes, over "
                    f"max.message.bytes ({self.max_bytes}) of topic {self.topic!r}")
        return None


def _offset_specs(specs):
    """kcat's -o, given once or twice: a start (beginning | end | stored | N | -N (N before the
    end) | @ts | s@ts, timestamps in ms) and an end e@ts (stop before the first record at or
    after ts; kcat's meaning). Returns ((mode, arg), end timestamp or None)."""
    start, end = None, None
    for spec in specs:
        if re.fullmatch(r"e@-?[0-9]+", spec):
            if end is not None:
                raise Failure(f"two end offsets: {end!r} and {spec!r}")
            end = int(spec[2:])
            continue
        parsed = _offset_spec(spec)
        if start is not None:
            raise Failure(f"two start offsets: -o {start[2]} and -o {spec}")
        start = parsed + (spec,)
    return (start[:2] if start else ("beginning", None)), end


def _offset_spec(spec):
    if spec in ("beginning", "end", "stored"):
        return spec, None
    if re.fullmatch(r"s?@-?[0-9]+", spec):
        return "time", int(spec.split("@", 1)[1])
    if re.fullmatch(r"-?[0-9]+", spec):
        n = int(spec)
        return ("relative", n) if n < 0 else ("absolute", n)
    raise Failure(f"bad offset {spec!r}: use beginning, end, N, -N, @timestamp_ms, s@timestamp_ms "
                  "or e@timestamp_ms")


# kcat's -f codes; the output is bytes, so keys and values come out exactly as stored.
FORMAT_TOKENS = re.compile(rb"%(.)|\\x([0-9a-fA-F]{2})|\\(.)|%$", re.S)
_FORMAT_CODES = {
    b"s": lambda r: r.value or b"",
    b"S": lambda r: b"%d" % (len(r.value) if r.value is not None else -1),
    b"R": lambda r: (len(r.value) if r.value is not None else -1).to_bytes(4, "big", signed=True),
    b"k": lambda r: r.key or b"",
    b"K": lambda r: b"%d" % (len(r.key) if r.key is not None else -1),
    b"t": lambda r: r.topic.encode(),
    b"p": lambda r: b"%d" % r.partition,
    b"o": lambda r: b"%d" % r.offset,
    b"T": lambda r: b"%d" % r.timestamp,
    b"h": lambda r: b",".join(k.encode() + b"=" + (v or b"") for k, v in r.headers),
    b"%": lambda r: b"%",
}
_BACKSLASH = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"\\": b"\\"}


def _compile_format(fmt):
    """A -f format → a function record → bytes. An unknown %-code is a usage error."""
    raw = os.fsencode(fmt)
    parts = []
    pos = 0
    for m in FORMAT_TOKENS.finditer(raw):
        if m.start() > pos:
            parts.append(raw[pos:m.start()])
        pos = m.end()
        code, hexa, esc = m.groups()
        if hexa is not None:
            parts.append(bytes([int(hexa, 16)]))
        elif esc is not None:
            parts.append(_BACKSLASH.get(esc, b"\\" + esc))
        elif code is not None and code in _FORMAT_CODES:
            parts.append(_FORMAT_CODES[code])
        else:
            shown = "%" + (code.decode(errors="replace") if code else "")
            raise click.BadParameter(
                f"unknown format code {shown!r} in {fmt!r} (known: %s %S %R %k %K %t %p %o %T %h "
                "%%, \\n \\r \\t \\\\ \\xHH)", param_hint="'-f' / '--format'")
    if pos < len(raw):
        parts.append(raw[pos:])
    return lambda r: b"".join(p if isinstance(p, bytes) else bytes(p(r)) for p in parts)


def _surrogate(b):
    return None if b is None else bytes(b).decode("utf-8", "surrogateescape")


def _kcat_json(tstypes):
    """kcat -J's envelope, field for field (key and payload as their bytes, as kcat writes
    them; broker 0 is the node id klog serve gives itself)."""
    def render(r):
        doc = {"topic": r.topic, "partition": r.partition, "offset": r.offset,
               "tstype": tstypes[r.topic], "ts": r.timestamp, "broker": 0}
        if r.headers:
            doc["headers"] = [x for k, v in r.headers for x in (k, _surrogate(v))]
        doc["key"] = _surrogate(r.key)
        doc["payload"] = _surrogate(r.value)
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        return _UPPER_HEX.sub(lambda m: m.group(1) + m.group(2).upper(), text).encode(
            "utf-8", "surrogateescape") + b"\n"
    return render


# kcat writes control characters as \u001B, json.dumps as \u001b (a \u after an even run of
# backslashes is an escape; after an odd one it is text).
_UPPER_HEX = re.compile(r"(?<!\\)((?:\\\\)*\\u)([0-9a-f]{4})")


def _klog_json(r):
    return (json.dumps({"topic": r.topic, "partition": r.partition, "offset": r.offset,
                        "timestamp": r.timestamp, "key": _text(r.key) if r.key is not None else None,
                        "value": _text(r.value) if r.value is not None else None,
                        "headers": {k: _text(v) for k, v in r.headers}}) + "\n").encode()


def _text(b):
    return "" if b is None else b.decode("utf-8", errors="backslashreplace")


@cli.command()
@click.argument("topic_names", metavar="TOPIC...", nargs=-1, required=True)
@click.option("-o", "--offset", "offset_specs", multiple=True,
              help="start: beginning (default), end, stored, N, -N (from the end), @ts or s@ts "
                   "(ms); end: e@ts (stop before the first record at or after ts); may be repeated")
@click.option("-p", "--partition", type=click.IntRange(min=0), default=None, help="only this partition")
@click.option("-e", "--exit", "exit_at_end", is_flag=True, help="exit at the end of the log")
@click.option("-c", "--count", type=click.IntRange(min=1), default=None, help="stop after N records")
@click.option("-f", "--format", "fmt", default=None,
              help="kcat-style format: %t %p %o %k %s %T %h %K %S %R %%, \\n \\t \\xHH")
@click.option("-J", "kcat_json", is_flag=True, help="kcat's JSON envelope per record")
@click.option("-g", "--group", default=None,
              help="consume as a member of this consumer group; commits only what was written out")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per record (klog's fields)")
@click.pass_context
@_guard
def consume(ctx, topic_names, offset_specs, partition, exit_at_end, count, fmt, kcat_json, group,
            as_json):
    """Print records of one or more TOPICs (each value on a line, as kcat -C does).

    With -g, offsets are committed for records written to stdout only: on a pipe, those the
    reader has read (klog consume -g g | head -3 leaves the group at record 4); Ctrl-C
    exits with status 130, a closed pipe with 0."""
    if sum([as_json, kcat_json, fmt is not None]) > 1:
        raise click.UsageError("choose one of -f, -J and --json")
    if group and partition is not None:
        raise click.UsageError("-p cannot be used with -g: the group assigns the partitions")
    render = _compile_format(fmt) if fmt is not None else None
    (mode, arg), end_ts = _offset_specs(offset_specs)
    broker = _broker(ctx, create=False)
    topic_names = list(dict.fromkeys(topic_names))
    tps = []
    for name in topic_names:
        n_parts = broker.partition_count(name)
        if partition is not None and partition >= n_parts:
            raise Failure(f"topic {name!r} has partitions 0..{n_parts - 1}, not {partition}")
        tps += [klog.TopicPartition(name, p) for p in
                ([partition] if partition is not None else range(n_parts))]
    if kcat_json:
        tstypes = {name: "logappend" if broker.partition(name, 0).config.message_timestamp_type ==
                   "LogAppendTime" else "create" for name in topic_names}
        render = _kcat_json(tstypes)
    elif as_json:
        render = _klog_json
    elif render is None:
        render = lambda r: (r.value or b"") + b"\n"   # noqa: E731
    ends = None
    if end_ts is not None:
        ends = {}
        for tp in tps:
            part = broker.partition(tp.topic, tp.partition)
            found = part.offset_for_time(end_ts)
            ends[tp] = part.high_watermark if found is None else found
    consumer = broker.consumer(group, {"enable.auto.commit": "false",
                                       "auto.offset.reset": "earliest" if mode != "end" else "latest"})
    ctx.call_on_close(consumer.close)

    delivered = {}      # tp -> next offset, for records the reader has taken
    committed = {}

    def taken(token):
        tp, offset = token
        delivered[tp] = offset + 1

    sink = Stdout(sys.stdout.fileno(), taken, track_pipe=bool(group))

    def commit(only=None):
        todo = {tp: off for tp, off in delivered.items()
                if committed.get(tp) != off and (only is None or tp in only)}
        if todo:
            consumer.commit(todo)
            committed.update(todo)

    def on_revoke(partitions):
        sink.flush()
        commit(set(partitions))
        for tp in partitions:        # another member may move them on before they come back
            delivered.pop(tp, None)
            committed.pop(tp, None)

    def on_assign(partitions):
        # Where the group starts (its committed offset, or the reset position) is delivered
        # as far as nothing has been printed: a new group at -o end commits the log end.
        for tp in partitions:
            delivered.setdefault(tp, consumer.position(tp))

    if group:
        consumer.subscribe(topic_names, on_assign=on_assign, on_revoke=on_revoke)
    else:
        consumer.assign(tps)
        _seek(consumer, broker, tps, mode, arg)
    shown = 0
    next_commit = time.monotonic() + 1.0
    try:
        while not (count and shown >= count):
            records = consumer.poll(timeout_ms=200 if exit_at_end or ends is not None else 1000,
                                    max_records=min(count - shown, 500) if count else None)
            for r in records:
                tp = klog.TopicPartition(r.topic, r.partition)
                if ends is not None and r.offset >= ends[tp]:
                    continue
                sink.write(render(r), (tp, r.offset))
                shown += 1
                if count and shown >= count:
                    break
            sink.flush()
            if group and time.monotonic() >= next_commit:
                commit()
                next_commit = time.monotonic() + 1.0
            if ends is not None and _past(consumer, ends):
                break
            if exit_at_end and not records and consumer.assignment() and \
                    _at_end(consumer, broker, consumer.assignment()):
                break
        sink.finish()
    except (BrokenPipeError, KeyboardInterrupt):
        # What the reader took is committed; the record in flight on a pipe is not.
        if group:
            try:
                sink.flush()
            except OSError:
                pass
            sink.abandon()
            commit()
        raise
    if group:
        commit()


def _past(consumer, ends):
    """Every partition with an e@ end has reached it (positions of unassigned ones unknown)."""
    assigned = consumer.assignment()
    return all(tp in assigned and consumer.position(tp) >= end for tp, end in ends.items())


def _seek(consumer, broker, tps, mode, arg):
    for tp in tps:
        part = broker.partition(tp.topic, tp.partition)
        if mode == "beginning":
            consumer.seek(tp, part.log_start_offset)
        elif mode == "end":
            consumer.seek(tp, part.high_watermark)
        elif mode == "absolute":
            consumer.seek(tp, min(max(arg, part.log_start_offset), part.high_watermark))
        elif mode == "relative":
            consumer.seek(tp, max(part.log_start_offset, part.high_watermark + arg))
        elif mode == "time":
            found = part.offset_for_time(arg)
            consumer.seek(tp, part.high_watermark if found is None else found)


def _at_end(consumer, broker, assignment):
    return all(consumer.position(tp) >= broker.partition(tp.topic, tp.partition).high_watermark
               for tp in assignment)


# -- consumer groups -------------------------------------------------------------------------------
@cli.group()
def group():
    """List, describe and reset consumer groups."""


@group.command("list")
@_format_option
@click.pass_context
@_guard
def group_list(ctx, output_format):
    coordinator = _broker(ctx, create=False).group_coordinator
    groups = [{"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type or None}
              for g in coordinator.list_groups()]
    if output_format == "json":
        return _json_out(groups)
    _table(["GROUP", "STATE", "PROTOCOL-TYPE"],
           [[g["group"], g["state"], g["protocol_type"] or "-"] for g in groups])


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
            part = broker.partition(tp.topic, tp.partition)
        except KlogError:
            continue
        current = committed.get(tp)
        lag = part.high_watermark - current if current is not None else None
        m = owners.get(tp)
        rows.append((tp.topic, tp.partition, current, part.log_start_offset, part.high_watermark,
                     lag, m.member_id if m else "", m.client_id if m else ""))
    return desc, rows


@group.command("describe")
@click.argument("group_id", metavar="GROUP")
@_format_option
@click.pass_context
@_guard
def group_describe(ctx, group_id, output_format):
    broker = _broker(ctx, create=False)
    desc, rows = _group_rows(broker, group_id)
    if desc.state == "Dead" and not rows:
        raise Failure(f"unknown consumer group {group_id!r}")
    total = sum(r[5] for r in rows if r[5] is not None)
    if output_format == "json":
        return _json_out({
            "group": group_id, "state": desc.state, "members": len(desc.members), "total_lag": total,
            "partitions": [{"topic": t, "partition": p, "current_offset": cur,
                            "log_start_offset": start, "log_end_offset": end, "lag": lag,
                            "member_id": member or None, "client_id": client or None}
                           for t, p, cur, start, end, lag, member, client in rows]})
    click.echo(f"GROUP        {group_id}\nSTATE        {desc.state}\nMEMBERS      {len(desc.members)}\n"
               f"TOTAL-LAG    {total}")
    _table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-START-OFFSET", "LOG-END-OFFSET",
            "LAG", "MEMBER-ID", "CLIENT-ID"],
           [[t, p, "-" if cur is None else cur, start, end, "-" if lag is None else lag,
             member or "-", client or "-"] for t, p, cur, start, end, lag, member, client in rows])


@group.command("reset-offsets")
@click.argument("group_id", metavar="GROUP")
@click.option("--topic", "topic_name", required=True, help="topic whose offsets to reset")
@click.option("--to-earliest", is_flag=True, help="to the log start")
@click.option("--to-latest", is_flag=True, help="to the log end")
@click.option("--to-offset", "to_offset", type=int, default=None, help="to this offset")
@click.option("--to-datetime", "to_time", type=int, default=None, metavar="TIMESTAMP_MS",
              help="to the first offset at or after this time")
@_format_option
@click.pass_context
@_guard
def group_reset_offsets(ctx, group_id, topic_name, to_earliest, to_latest, to_offset, to_time,
                        output_format):
    """Reset a group's committed offsets (the group must have no active members)."""
    # Separate flags: sharing one destination let --to-earliest --to-latest pass (the last won).
    to = "earliest" if to_earliest else "latest" if to_latest else None
    chosen = [x for x in (to_earliest or None, to_latest or None, to_offset, to_time) if x is not None]
    if len(chosen) != 1:
        raise Failure("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime")
    broker = _broker(ctx, create=False)
    offsets = {}
    for p in range(broker.partition_count(topic_name)):
        part = broker.partition(topic_name, p)
        if to == "earliest":
            target = part.log_start_offset
        elif to == "latest":
            target = part.high_watermark
        elif to_offset is not None:
            target = min(max(to_offset, part.log_start_offset), part.high_watermark)
        else:
            found = part.offset_for_time(to_time)
            target = part.high_watermark if found is None else found
        offsets[klog.TopicPartition(topic_name, p)] = target
    errors = broker.group_coordinator.commit_offsets(group_id, "", -1, offsets)
    failed = {tp: code for tp, code in errors.items() if code}
    if failed:
        from klog.group.errors import error_for
        code = next(iter(failed.values()))
        raise Failure(f"cannot reset offsets of group {group_id!r}: {error_for(code)} "
                      "(stop its consumers first)")
    if output_format == "json":
        return _json_out([{"topic": tp.topic, "partition": tp.partition, "new_offset": off}
                          for tp, off in sorted(offsets.items())])
    _table(["TOPIC", "PARTITION", "NEW-OFFSET"],
           [[tp.topic, tp.partition, off] for tp, off in sorted(offsets.items())])


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
    available = sum(broker.partition(topic_name, p).high_watermark
                    - broker.partition(topic_name, p).log_start_offset for p in range(n_parts))
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


def _hostport(value, what):
    """HOST:PORT with a port in 0..65535 (IPv6 in brackets)."""
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]*):([0-9]{1,5})", value or "")
    if not m or int(m.group(2)) > 65535:
        raise Failure(f"{what} {value!r} is not HOST:PORT with a port in 0..65535 "
                      "(e.g. 127.0.0.1:9092)")
    return value


def _check_bind(listen):
    """Bind the address once before anything is opened, so a port in use or an unknown host is
    one line and no data directory is created."""
    import socket

    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise Failure(f"cannot listen on {listen}: unknown host {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise Failure(f"cannot listen on {listen}: {exc.strerror or exc}") from None


@cli.command()
@click.option("--data-dir", "serve_data_dir", default=None,
              help="broker data directory (default: the global --data-dir, else log.dirs of --config)")
@click.option("--listen", default=None,
              help="HOST:PORT to bind [default: listeners of --config, else 127.0.0.1:9092]")
@click.option("--advertised-listener", default=None,
              help="HOST:PORT clients are told to connect to (default: the bound address)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a Kafka server.properties file (klog.properties); -c and the flags above win")
@click.option("-c", "--config-value", "configs", multiple=True, metavar="KEY=VALUE",
              help="broker setting, Kafka's names (num.partitions, auto.create.topics.enable, ...)")
@click.option("--node-id", type=click.IntRange(0, 2**31 - 1), default=None,
              help="this broker's id in a cluster (broker.id / node.id); needs --zookeeper")
@click.option("--zookeeper", default=None, metavar="HOST:PORT[,...][/chroot]",
              help="join the cluster coordinated by this ZooKeeper (zookeeper.connect; "
                   "chroot default /klog); without it klog serve is a single node")
@click.pass_context
@_guard
def serve(ctx, serve_data_dir, listen, advertised_listener, config_file, configs, node_id,
          zookeeper):
    """Serve the data directory over the Kafka wire protocol until SIGTERM/SIGINT.

    --config reads Kafka's server.properties format: listeners (the PLAINTEXT one) and
    advertised.listeners become --listen / --advertised-listener, log.dirs the data directory,
    and broker settings klog knows are applied. Kafka settings klog has no use for (threads,
    replication, TLS, ...) are a warning; any other key is an error naming file and line."""
    import logging

    from klog import server_properties
    from klog.server import run

    settings = {}
    cluster_settings = {}
    if config_file is not None:
        props = server_properties.load(config_file)
        node_id = node_id if node_id is not None else props.node_id
        zookeeper = zookeeper or props.zookeeper
        cluster_settings.update(props.cluster_settings)
        for warning in props.warnings:
            err.print(f"warning: {escape(warning)}", highlight=False)
        settings.update(props.settings)
        listen = listen or props.listen
        advertised_listener = advertised_listener or props.advertised
        global_dir = click.get_current_context().parent.get_parameter_source("data_dir")
        if serve_data_dir is None and props.data_dir and \
                global_dir not in (click.core.ParameterSource.COMMANDLINE,
                                   click.core.ParameterSource.ENVIRONMENT):
            serve_data_dir = props.data_dir
    settings.update(_configs(configs, "broker setting"))
    for key, arg in server_properties.CLUSTER_SETTINGS.items():   # cluster settings, not the broker's
        if key in settings:
            cluster_settings[arg] = _cluster_int(settings.pop(key), key)
    cluster = None
    if zookeeper is not None or node_id is not None:
        if zookeeper is None or node_id is None:
            raise Failure("cluster mode needs both --node-id (broker.id) and --zookeeper "
                          "(zookeeper.connect)")
        from klog.cluster.zkstore import parse_connect
        try:
            parse_connect(zookeeper)
        except ValueError as exc:
            raise Failure(str(exc)) from None
        cluster = {"node_id": node_id, "zookeeper": zookeeper, **cluster_settings}
    listen = _hostport(listen or "127.0.0.1:9092", "--listen")
    if advertised_listener is not None:
        _hostport(advertised_listener, "--advertised-listener")
    data_dir = serve_data_dir or ctx.obj["data_dir"]
    from klog.config import BrokerConfig

    BrokerConfig.from_dict(settings)            # a bad setting is an error before anything opens
    _check_data_dir(data_dir, create=True)
    _check_bind(listen)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(data_dir, listen, advertised_listener, settings or None, cluster)


def _cluster_int(value, key):
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise Failure(f"{key}={value!r}: expected a non-negative integer")
    return n


@cli.command()
@click.option("--from", "source", required=True, metavar="TARGET",
              help="data directory, file:PATH or kafka://HOST:PORT[,...] to copy from")
@click.option("--to", "destination", required=True, metavar="TARGET",
              help="data directory, file:PATH or kafka://HOST:PORT[,...] to copy to")
@click.option("--topics", required=True, metavar="REGEX", help="topics to copy (full match)")
@click.option("--group", default="klog-mirror", show_default=True,
              help="consumer group on the source that records progress (resume point)")
@click.option("-e", "--exit-at-end", is_flag=True, help="stop once the source has nothing more")
@click.option("--rate", type=click.IntRange(min=1), default=None, metavar="RECORDS/S",
              help="copy at most this many records per second")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@_guard
def mirror(source, destination, topics, group, exit_at_end, rate, as_json):
    """Copy topics between targets (keys, values, headers, timestamps; source position in
    klog.mirror.* headers). Resumable: progress is committed to --group on the source."""
    import signal

    from klog.mirror import Mirror, connect_target

    src = connect_target(source)
    try:
        dst = connect_target(destination)
        try:
            m = Mirror(src, dst, topics, group=group, rate=rate)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: m.stop())
            report = m.run(exit_at_end=exit_at_end)
        finally:
            dst.close()
    finally:
        src.close()
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(f"mirrored {report.mirrored} record(s) from {len(report.topics)} topic(s); "
                   f"skipped {report.skipped} already at the destination")


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


# -- check (offline verification; the logic is klog.storage.check) --------------------------------
@cli.command()
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--topic", default=None, help="only this topic's partitions")
@click.option("--truncate-at-first-damage", "truncate", is_flag=True,
              help="cut each damaged partition at its first damaged batch (removes that batch "
                   "and everything after it)")
@click.pass_context
def check(ctx, path, topic, truncate):
    """Verify every batch (framing, CRC, offsets), the indexes and the checkpoints of a data
    directory or one partition directory. Exit 0 if clean, 1 on damage, 2 if it cannot check
    (no such directory, or a live process holds it: stop it first)."""
    from klog.errors import LogLockedError
    from klog.storage import check as checker

    root = path or ctx.obj["data_dir"]
    try:
        dirs = checker.partition_dirs(root, topic)
        lock_paths = ([root] if os.fspath(root) not in dirs else []) + dirs
        with checker.DirectoryLocks(lock_paths):
            reports = [checker.check_partition(d) for d in dirs]
            cuts = [checker.truncate_at_first_damage(r) for r in reports] if truncate else []
    except (LogLockedError, FileNotFoundError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except (KlogError, OSError) as exc:
        raise Failure(str(exc)) from None
    damaged = 0
    for r in reports:
        state = "damaged" if r.damage else "ok"
        out.print(f"{state:8} {r.path}: {r.segments} segments, {r.batches} batches, {r.bytes} "
                  f"bytes, end offset {r.end_offset}", highlight=False, markup=False)
        for d in r.damage:
            out.print(f"  damage: {d}", highlight=False, markup=False)
        for note in r.notes:
            out.print(f"  note: {note}", highlight=False, markup=False)
        damaged += bool(r.damage)
    for cut in filter(None, cuts):
        out.print(f"truncated: {cut}", highlight=False, markup=False)
    out.print(f"{len(reports)} partitions checked, {damaged} damaged", highlight=False)
    sys.exit(1 if damaged else 0)


from klog.cli_cluster import cluster  # noqa: E402 (it uses the helpers above)

cli.add_command(cluster)


def main():
    cli(prog_name="klog")


if __name__ == "__main__":
    main()
