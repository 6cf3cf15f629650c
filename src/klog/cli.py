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

err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


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
        except (KlogError, ValueError, TypeError, OSError, KeyError) as exc:
            raise Failure(str(exc) or type(exc).__name__) from None
    return run


def _configs(pairs):
    """['k=v', ...] → {k: v} (values stay strings: klog parses them like Kafka's tools do)."""
    config = {}
    for pair in pairs:
        if "=" not in pair:
            raise Failure(f"config {pair!r} is not key=value")
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
    broker = _broker(ctx, create=False)
    changes = _configs(configs)
    changes.update({k: None for k in deletes})
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
    hdrs = [(k, v.encode()) for k, v in _configs(headers).items()] or None
    broker = _broker(ctx)
    producer = broker.producer({"compression.type": compression, "linger.ms": 50})
    count = 0
    stdin = click.get_binary_stream("stdin")
    for raw in stdin:
        line = raw.rstrip(b"\r\n")
        key = None
        if key_delimiter is not None:
            delim = key_delimiter.encode()
            if delim in line:
                key, line = line.split(delim, 1)
        producer.send(topic_name, line, key=key, partition=partition, headers=hdrs)
        count += 1
    producer.close()
    err.print(f"produced {count} record(s) to {topic_name}", highlight=False)


def _offset_spec(spec):
    """kcat's -o: beginning | end | N | -N (N before the end) | @timestamp_ms."""
    if spec in ("beginning", "end", "stored"):
        return spec, None
    if spec.startswith("@") and spec[1:].lstrip("-").isdigit():
        return "time", int(spec[1:])
    if spec.lstrip("-").isdigit():
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
        records = consumer.poll(timeout_ms=200 if exit_at_end else 1000)
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
        if exit_at_end and not records and _at_end(consumer, broker, consumer.assignment()):
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


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def main():
    cli(prog_name="klog")


if __name__ == "__main__":
    main()
