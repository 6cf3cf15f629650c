"""Running bindings: the poll loop, lanes, workers, sending outputs, commits, retries, DLQ.

One thread per input binding owns its consumer (poll, pause/resume, commit all happen there).
Fetched records go into lanes (one per partition, or per key with ``ordering: key``); with
``concurrency: 1`` the poll thread runs the lanes itself, otherwise a pool of ``concurrency``
workers does, one worker per lane at a time, so each lane keeps its order. A worker runs the
pipeline over a chunk of its lane, sends the outputs and waits for their acknowledgements; only
then are the records done, and the poll thread commits each partition's first offset not done
(tracking.OffsetTracker). A failed record stays at the head of its lane until its back-off has
passed (the partition is paused meanwhile); other lanes go on.

Crash behaviour: nothing is kept on disk here; a SIGKILL between an output's acknowledgement
and the commit runs those records again after the restart (at-least-once).
SIGTERM / ``stop()``: no more polling, in-flight chunks finish, done offsets are committed, the
consumer leaves the group, the producer flushes.
"""
import asyncio
import concurrent.futures
import logging
import threading
import time

from klog.functions import codec
from klog.functions.composition import collect
from klog.functions.errors import AppStoppedError, FunctionTimeoutError
from klog.functions.message import header_pairs
from klog.functions.metrics import BindingStats
from klog.functions.retry import RetryPolicy, dlq_headers, dlq_name
from klog.functions.tracking import Lane, OffsetTracker, PrefixTracker

log = logging.getLogger("klog.functions")

CHUNK = 1000          # records a worker takes from a lane at once
IDLE_POLL_MS = 100    # longest poll while nothing is due (also the stop latency)
PLAIN = (dict, bytes, str, list)


class Outputs:
    """Encodes a pipeline's outputs and sends them to the output binding's destination."""

    def __init__(self, producer, cfg):
        self.producer = producer
        self.cfg = cfg
        self.topic = cfg.destination if cfg is not None else None
        self.content_type = cfg.content_type if cfg is not None else codec.JSON
        pk = cfg.partition_key if cfg is not None else None
        if isinstance(pk, str):
            field = pk
            self.partition_key = lambda v: v.get(field) if isinstance(v, dict) else getattr(v, field, None)
        else:
            self.partition_key = pk

    def send_fast(self, results, records):
        """The outputs of a simple pipeline: ``results[i]`` is what the function returned for
        ``records[i]``. Plain values (dict, bytes, str, list) from records without headers go
        as one batch; anything else takes the general path."""
        n = len(results)
        if not n:
            return 0
        recs = records[:n] if len(records) != n else records
        if self.partition_key is None and self.topic is not None and \
                all(type(v) in PLAIN for v in results) and not any(r.headers for r in recs):
            ct = self.content_type
            if ct == codec.JSON:
                jenc = codec.json_encode
                values = [v if type(v) is bytes else jenc(v) for v in results]
            else:
                enc = codec.encode
                values = [enc(v, ct) for v in results]
            keys = [r.key for r in recs]
            if not any(keys):
                keys = None
            self.producer.send_batch(self.topic, values, keys=keys)
            return n
        outs = []
        for v, r in zip(results, recs):
            collect(v, r.key, r.headers, None, None, outs)
        return self.send_all(outs)

    def send_all(self, outs):
        """Send a list of ``(value, key, headers, partition, destination)``; returns the number
        sent once all are acknowledged (raises the first delivery error)."""
        if not outs:
            return 0
        enc = codec.encode
        ct = self.content_type
        pk = self.partition_key
        plain = pk is None
        if plain:
            for o in outs:
                if o[2] or o[3] is not None or o[4] is not None:
                    plain = False
                    break
        if plain:   # the fast path: one batch per partition, acknowledged on return
            if self.topic is None:
                raise ValueError("the function returned a value but its pipeline has no output binding")
            keys = [o[1] for o in outs]
            self.producer.send_batch(self.topic, [enc(o[0], ct) for o in outs],
                                     keys=keys if any(keys) else None)
            return len(outs)
        futures = []
        send = self.producer.send
        for value, key, headers, partition, dest in outs:
            topic = dest or self.topic
            if topic is None:
                raise ValueError("the function returned a value but its pipeline has no output "
                                 "binding (return Message(destination=...) or add one)")
            if pk is not None:
                k = pk(value)
                if k is not None:
                    key = k if isinstance(k, bytes) else str(k).encode()
            if isinstance(key, str):
                key = key.encode()
            if isinstance(headers, dict):
                headers = header_pairs(headers)
            futures.append(send(topic, enc(value, ct), key=key, partition=partition,
                                headers=list(headers) if headers else None))
        for f in futures:
            f.get()
        return len(futures)


class Compute:
    """Runs a pipeline over records: sync inline, sync with a timeout (on a helper thread that
    is abandoned if the function hangs), or async on the app's event loop."""

    def __init__(self, pipeline, timeout_ms, loop):
        self.pipeline = pipeline
        self.timeout = None if timeout_ms is None else timeout_ms / 1000.0
        self.loop = loop
        self._pool = None

    def chunk_fast(self, records):
        """A simple pipeline (one sync function over plain values, no timeout): -> (what the
        function returned per record, index of the failed record or None, exception)."""
        st = self.pipeline.stages[0]
        fn = st.fn
        raw = st.input.raw_decode
        dec = st.input.decode
        out = []
        append = out.append
        try:
            for r in records:
                value = r.value
                try:
                    v = raw(value) if value is not None else None
                except Exception:
                    v = dec(value)   # raises ValueDecodeError naming the value and the type
                append(fn(v))
        except Exception as exc:
            return out, len(out), exc   # appends only on success: len is the failed index
        return out, None, None

    def chunk(self, records):
        """-> (outputs per record, index of the failed record or None, exception)."""
        if self.pipeline.is_async:
            fut = asyncio.run_coroutine_threadsafe(self._chunk_async(records), self.loop)
            return fut.result()
        results = []
        run = self.pipeline.run
        if self.timeout is None:
            for i, rec in enumerate(records):
                try:
                    results.append(run(rec))
                except Exception as exc:
                    return results, i, exc
            return results, None, None
        for i, rec in enumerate(records):
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, "klog-fn-timeout")
            fut = self._pool.submit(run, rec)
            try:
                results.append(fut.result(self.timeout))
            except concurrent.futures.TimeoutError:
                # the hung call keeps its thread; later records get a fresh one
                self._pool.shutdown(wait=False)
                self._pool = None
                return results, i, FunctionTimeoutError(
                    f"{self.pipeline.name} took longer than {self.timeout * 1000:.0f} ms on "
                    f"{rec.topic}-{rec.partition}@{rec.offset}")
            except Exception as exc:
                return results, i, exc
        return results, None, None

    async def _chunk_async(self, records):
        results = []
        for i, rec in enumerate(records):
            try:
                if self.timeout is None:
                    results.append(await self.pipeline.run_async(rec))
                else:
                    results.append(await asyncio.wait_for(self.pipeline.run_async(rec),
                                                          self.timeout))
            except asyncio.TimeoutError:
                return results, i, FunctionTimeoutError(
                    f"{self.pipeline.name} took longer than {self.timeout * 1000:.0f} ms on "
                    f"{rec.topic}-{rec.partition}@{rec.offset}")
            except Exception as exc:
                return results, i, exc
        return results, None, None

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False)


class InputBinding:
    """A pipeline with an input binding: its consumer, lanes, workers and poll thread."""

    def __init__(self, running, pipeline, cfg_in, outputs, dlq_producer):
        self.running = running
        self.pipeline = pipeline
        self.cfg = cfg_in
        self.outputs = outputs
        self.dlq_producer = dlq_producer
        self.dlq_topic = dlq_name(cfg_in) if cfg_in.enable_dlq else None
        self.policy = RetryPolicy(cfg_in)
        self.stats = BindingStats(cfg_in.name)
        self.compute = Compute(pipeline, cfg_in.timeout, running.loop)
        self.fast = pipeline.simple and cfg_in.timeout is None
        self.by_key = cfg_in.ordering == "key"
        self.lanes = {}
        self.trackers = {}
        self.paused = set()
        self.results = []                 # finished chunks, handed from workers to the poll thread
        self.results_cv = threading.Condition()
        self.workers = (concurrent.futures.ThreadPoolExecutor(cfg_in.concurrency, f"klog-{cfg_in.name}")
                        if cfg_in.concurrency > 1 else None)
        self.busy = 0
        self.assigned = frozenset()       # (topic, partition) pairs; readable from any thread
        self.stopping = False
        self.idle = threading.Event()
        self.generation = 0               # bumps whenever records are processed
        self.error = None
        cconf = {"auto.offset.reset": cfg_in.auto_offset_reset, "enable.auto.commit": False,
                 "max.poll.records": cfg_in.max_poll_records}
        cconf.update(cfg_in.consumer)
        self.consumer = running.client.consumer(cfg_in.group, cconf)
        self.thread = threading.Thread(target=self._main, name=f"klog-binding-{cfg_in.name}",
                                       daemon=True)
        self._probe_consumer = None
        self._lag_probe = None
        self._lag_lock = threading.Lock()
        self._committed_at_assign = {}
        self.stats.lag_fn = self.current_lag

    # -- poll thread ---------------------------------------------------------------------------
    def start(self):
        self.consumer.subscribe([self.cfg.destination], on_assign=self._on_assign,
                                on_revoke=self._on_revoke)
        self.thread.start()

    def _main(self):
        try:
            self._loop()
        except BaseException as exc:  # a broken consumer: the app stops, the error is kept
            log.exception("binding %s: poll loop failed", self.cfg.name)
            self.error = exc
            self.running._failed(exc)
        finally:
            try:
                self._drain()
            except Exception:
                log.exception("binding %s: drain failed", self.cfg.name)
            self.stats.lag_fn = None
            with self._lag_lock:
                probes = (self.consumer, self._probe_consumer, self._lag_probe)
                self._lag_probe = None
            for c in probes:
                try:
                    if c is not None:
                        c.close()
                except Exception:
                    log.exception("binding %s: consumer close failed", self.cfg.name)
            self.compute.close()
            if self.workers is not None:
                self.workers.shutdown(wait=True)

    def _loop(self):
        consumer = self.consumer
        while not self.stopping:
            timeout = self._poll_timeout()
            records = consumer.poll(timeout_ms=timeout)
            if records:
                self._dispatch(records)
            self._run_lanes()
            self._handle_results()
            self._pauses()
            self._commit()
            self._check_idle()

    def _poll_timeout(self):
        if self.busy:
            return 5 if self.workers is not None else 0
        now = time.monotonic()
        wait = IDLE_POLL_MS / 1000.0
        for lane in self.lanes.values():
            if lane.queue:
                wait = min(wait, max(0.0, lane.not_before - now))
        return int(wait * 1000)

    def _dispatch(self, records):
        lanes = self.lanes
        trackers = self.trackers
        if not self.by_key:
            last_tp = lane = None
            for rec in records:
                tp = (rec.topic, rec.partition)
                if tp != last_tp:
                    lane = lanes.get(tp)
                    if lane is None:
                        lane = lanes[tp] = Lane(tp)
                        trackers[tp] = PrefixTracker()
                    last_tp = tp
                lane.queue.append(rec)
            return
        for rec in records:
            tp = (rec.topic, rec.partition)
            tracker = trackers.get(tp)
            if tracker is None:
                tracker = trackers[tp] = OffsetTracker()
            lane_id = (tp, rec.key)
            lane = lanes.get(lane_id)
            if lane is None:
                lane = lanes[lane_id] = Lane(tp, lane_id)
            tracker.add(rec.offset)
            lane.queue.append(rec)

    def _run_lanes(self):
        now = time.monotonic()
        for lane in list(self.lanes.values()):
            if lane.busy or not lane.queue or lane.not_before > now or self.stopping:
                continue
            q = lane.queue
            if len(q) <= CHUNK:
                chunk = list(q)
                q.clear()
            else:
                chunk = [q.popleft() for _ in range(CHUNK)]
            lane.busy = True
            self.busy += 1
            if self.workers is None:
                self._finish(lane, chunk, *self._process(lane, chunk))
            else:
                self.workers.submit(self._work, lane, chunk)

    def _work(self, lane, chunk):
        try:
            result = self._process(lane, chunk)
        except BaseException as exc:  # never lose a chunk: hand the failure to the poll thread
            result = (0, None, exc)
        with self.results_cv:
            self.results.append((lane, chunk, result))
            self.results_cv.notify_all()

    def _handle_results(self, wait=False):
        with self.results_cv:
            if wait and not self.results:
                self.results_cv.wait(0.1)
            results, self.results = self.results, []
        for lane, chunk, result in results:
            self._finish(lane, chunk, *result)

    def _finish(self, lane, chunk, n_done, retry_at, fatal):
        """Poll thread: mark the first ``n_done`` records done; put the rest back at the head."""
        lane.busy = False
        self.busy -= 1
        tracker = self.trackers.get(lane.tp)
        if tracker is not None and n_done:
            if self.by_key:
                for rec in chunk[:n_done]:
                    tracker.done(rec.offset)
            else:
                tracker.done_through(chunk[n_done - 1].offset)
        rest = chunk[n_done:]
        if rest:
            lane.queue.extendleft(reversed(rest))
        lane.not_before = retry_at or 0.0
        if self.by_key and not lane.queue and not lane.not_before:
            self.lanes.pop(lane.id, None)   # one lane per key seen: drop the idle ones
        if n_done:
            self.generation += 1
        if fatal is not None:
            self.error = fatal
            self.running._failed(fatal)

    def _pauses(self):
        now = time.monotonic()
        want = set()
        limit = 4 * self.cfg.max_poll_records
        sizes = {}
        for lane in self.lanes.values():
            sizes[lane.tp] = sizes.get(lane.tp, 0) + len(lane.queue)
            if lane.queue and lane.not_before > now:
                want.add(lane.tp)
        want.update(tp for tp, n in sizes.items() if n > limit)
        if want != self.paused:
            assigned = self.consumer.assignment()
            resume = [tp for tp in self.paused - want if tp in assigned]
            pause = [tp for tp in want - self.paused if tp in assigned]
            if resume:
                self.consumer.resume(resume)
            if pause:
                self.consumer.pause(pause)
            self.paused = want

    def _commit(self, tps=None):
        offsets = {}
        for tp, tracker in self.trackers.items():
            if tps is not None and tp not in tps:
                continue
            n = tracker.to_commit()
            if n is not None:
                offsets[tp] = n
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except Exception as exc:  # rebalancing: those records run again elsewhere (at-least-once)
            log.warning("binding %s: commit of %s failed: %s", self.cfg.name, offsets, exc)
            return
        for tp, n in offsets.items():
            self.trackers[tp].committed = n

    def _probe(self):
        """A consumer outside the group, for end offsets: over the wire a consumer that is
        fetching answers offset queries only after its long-poll fetch returns."""
        if self._probe_consumer is None:
            self._probe_consumer = self.running.client.consumer(None, {"enable.auto.commit": False})
        return self._probe_consumer

    def current_lag(self):
        """Records behind the end of the assigned partitions (any thread: the metrics
        endpoint asks while the poll thread may be stuck in a slow function)."""
        assigned = list(self.assigned)
        if not assigned:
            return 0
        with self._lag_lock:
            if self._lag_probe is None:
                self._lag_probe = self.running.client.consumer(None, {"enable.auto.commit": False})
            ends = self._lag_probe.end_offsets(assigned)
        total = 0
        for tp, n in ends.items():
            t = self.trackers.get(tuple(tp))
            done = t.next_offset if t is not None and t.next_offset is not None else None
            if done is None:
                done = self._committed_at_assign.get(tuple(tp), 0)
            total += max(0, n - done)
        return total

    def _done_offset(self, tp):
        t = self.trackers.get(tuple(tp))
        if t is not None and t.next_offset is not None:
            return t.next_offset
        try:
            return self.consumer.position(tp)
        except Exception:
            return 0

    def _on_assign(self, tps):
        try:   # where lag counts from until a record of the partition is done
            committed = self.consumer.committed(list(tps))
            self._committed_at_assign.update({tuple(tp): n or 0 for tp, n in committed.items()})
        except Exception:
            pass
        self.assigned = frozenset(self.assigned | {tuple(tp) for tp in tps})

    def _on_revoke(self, tps):
        """Inside poll: finish what is in flight for these partitions, commit, forget them."""
        tps = {tuple(tp) for tp in tps}
        while any(l.busy for l in self.lanes.values() if tuple(l.tp) in tps):
            self._handle_results(wait=True)
        self._commit(tps)
        for lane_id in [k for k, l in self.lanes.items() if tuple(l.tp) in tps]:
            del self.lanes[lane_id]
        for tp in [tp for tp in self.trackers if tuple(tp) in tps]:
            del self.trackers[tp]
        self.paused = {tp for tp in self.paused if tuple(tp) not in tps}
        self.assigned = frozenset(tp for tp in self.assigned if tp not in tps)

    def _drain(self):
        while self.busy:
            self._handle_results(wait=True)
        self._commit()

    def _check_idle(self):
        if not self.running._idle_wanted:
            return
        if self.busy or any(l.queue for l in self.lanes.values()):
            self.idle.clear()
            return
        if any(t.pending or (t.next_offset is not None and t.next_offset != t.committed)
               for t in self.trackers.values()):
            self.idle.clear()
            return
        try:
            assigned = list(self.assigned)
            all_parts = self.consumer.partitions_for(self.cfg.destination)
            if len(assigned) < len(all_parts) and not self.running._idle_partial:
                self.idle.clear()
                return
            ends = self._probe().end_offsets(assigned)
            for tp, end in ends.items():
                if end and self._done_offset(tp) < end:
                    self.idle.clear()
                    return
        except Exception:
            self.idle.clear()
            return
        self.idle.set()

    # -- worker --------------------------------------------------------------------------------
    def _process(self, lane, chunk):
        """Run the pipeline over a chunk, send the outputs, wait for their acknowledgements.
        -> (records done from the head of the chunk, retry time or None, fatal error or None).
        A record that goes to the DLQ (or is skipped) does not end the chunk; the outputs of
        the whole chunk go out together, then the DLQ writes are awaited."""
        stats = self.stats
        fast = self.fast
        compute = self.compute.chunk_fast if fast else self.compute.chunk
        results_all, recs_all, dlq = [], [], []
        pos, n = 0, len(chunk)
        retry_at = fatal = None
        elapsed = 0.0
        head_attempts = lane.attempts   # failed attempts of chunk[0] so far
        while pos < n:
            part = chunk[pos:] if pos else chunk
            t0 = time.perf_counter()
            results, failed_at, exc = compute(part)
            elapsed += time.perf_counter() - t0
            n_ok = len(results)
            if n_ok:
                results_all.extend(results)
                recs_all.extend(part[:n_ok] if n_ok != len(part) else part)
            if failed_at is None:
                pos = n
                break
            pos += n_ok
            retry_at, fatal, gave_up = self._failed(lane, chunk[pos], exc, dlq, pos,
                                                    head_attempts if pos == 0 else 0)
            if not gave_up:
                break
            pos += 1
        try:
            if self.pipeline.sink or not results_all:
                n_out = 0
            elif fast:
                n_out = self.outputs.send_fast(results_all, recs_all)
            else:
                n_out = self.outputs.send_all([o for r in results_all for o in r])
        except Exception as send_exc:
            # a delivery failed: none of the chunk counts as done; its first record takes the
            # failure (the retry sends the outputs again: duplicates, never a loss)
            stats.chunk(0, 0, 0.0)
            head = []
            retry_at, fatal, gave_up = self._failed(lane, chunk[0], send_exc, head, 0,
                                                    head_attempts)
            if not gave_up:
                return 0, retry_at, fatal
            dlq, pos, retry_at = head, 1, None
        else:
            stats.chunk(len(results_all), n_out, elapsed)
            if retry_at is None:
                lane.attempts = 0
        for i, fut in dlq:
            try:
                fut.get()
            except Exception as dlq_exc:
                rec = chunk[i]
                where = f"{rec.topic}-{rec.partition}@{rec.offset}"
                log.error("binding %s: %s could not go to DLQ %s: %s", self.cfg.name, where,
                          self.dlq_topic, dlq_exc)
                # records from this one on are not done: they run again after a restart
                return i, None, AppStoppedError(f"binding {self.cfg.name}: record {where} "
                                                f"failed and the DLQ send failed: {dlq_exc}")
            stats.add("dead_lettered")
        return pos, retry_at, fatal

    def _failed(self, lane, rec, exc, dlq, index, previous):
        """A record failed (``previous`` failed attempts before this one). -> (retry time,
        fatal error, gave up: DLQ or skipped)."""
        lane.attempts = previous + 1
        self.stats.add("failures")
        if self.policy.should_retry(exc, lane.attempts):
            self.stats.add("retries")
            delay = self.policy.backoff_ms(lane.attempts) / 1000.0
            log.warning("binding %s: %s-%d@%d failed (attempt %d of %d), retrying in %.0f ms: %s: %s",
                        self.cfg.name, rec.topic, rec.partition, rec.offset, lane.attempts,
                        self.policy.max_attempts, delay * 1000, type(exc).__name__, exc)
            return time.monotonic() + delay, None, False
        lane.attempts = 0
        fatal = self._give_up(rec, exc, dlq, index)
        return None, fatal, fatal is None

    def _give_up(self, rec, exc, dlq, index):
        """After the last attempt: to the DLQ (its write awaited with the chunk's), skip, or
        stop. -> the fatal error, or None when the record counts as done."""
        where = f"{rec.topic}-{rec.partition}@{rec.offset}"
        if self.dlq_topic is not None:
            try:
                fut = self.dlq_producer.send(self.dlq_topic, rec.value, key=rec.key,
                                             headers=dlq_headers(rec, exc))
            except Exception as dlq_exc:
                log.error("binding %s: %s could not go to DLQ %s: %s", self.cfg.name, where,
                          self.dlq_topic, dlq_exc)
                return AppStoppedError(f"binding {self.cfg.name}: record {where} failed and the "
                                       f"DLQ send failed: {dlq_exc}")
            dlq.append((index, fut))
            log.warning("binding %s: %s sent to DLQ %s after %s: %s", self.cfg.name, where,
                        self.dlq_topic, type(exc).__name__, exc)
            return None
        if self.cfg.on_error == "skip":
            self.stats.add("skipped")
            log.error("binding %s: skipping %s after %s: %s", self.cfg.name, where,
                      type(exc).__name__, exc, exc_info=exc)
            return None
        log.error("binding %s: stopping on %s (no DLQ, on-error=stop): %s: %s", self.cfg.name,
                  where, type(exc).__name__, exc, exc_info=exc)
        err = AppStoppedError(f"binding {self.cfg.name}: record {where} failed for good: "
                              f"{type(exc).__name__}: {exc}")
        err.__cause__ = exc
        return err

    def stop(self):
        self.stopping = True


class SupplierBinding:
    """A supplier pipeline: called every ``fixed-delay`` ms; its outputs are sent and
    acknowledged before the next call."""

    def __init__(self, running, pipeline, cfg_out, outputs):
        self.running = running
        self.pipeline = pipeline
        self.cfg = cfg_out
        self.outputs = outputs
        self.stats = BindingStats(cfg_out.name)
        self.stop_event = threading.Event()
        self.error = None
        self.generation = 0
        self.idle = threading.Event()
        self.idle.set()
        self.thread = threading.Thread(target=self._main, name=f"klog-supplier-{cfg_out.name}",
                                       daemon=True)

    def start(self):
        self.thread.start()

    def _main(self):
        delay = self.cfg.fixed_delay / 1000.0
        while not self.stop_event.is_set():
            t0 = time.perf_counter()
            try:
                if self.pipeline.is_async:
                    outs = asyncio.run_coroutine_threadsafe(self.pipeline.run_async(None),
                                                            self.running.loop).result()
                else:
                    outs = self.pipeline.supply()
                n = self.outputs.send_all(list(outs))
                self.stats.chunk(1, n, time.perf_counter() - t0)
            except Exception as exc:
                self.stats.add("failures")
                log.exception("supplier %s failed", self.pipeline.name)
                if self.cfg.on_error == "stop":
                    self.error = exc
                    self.running._failed(AppStoppedError(f"supplier {self.pipeline.name}: "
                                                         f"{type(exc).__name__}: {exc}"))
                    return
            self.stop_event.wait(delay)

    def stop(self):
        self.stop_event.set()
