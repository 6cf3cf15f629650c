"""aiokafka against ``klog serve``."""
import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

pytestmark = pytest.mark.timeout(60)


def test_aiokafka_produce_and_group_consume(server):
    topic = "aio"
    group = "aio-" + uuid.uuid4().hex[:6]

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=server.address, enable_idempotence=True)
        await p.start()
        try:
            for i in range(20):
                await p.send_and_wait(topic, b"a%d" % i)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, bootstrap_servers=server.address, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        try:
            got = []
            while len(got) < 20:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=500), 20)
                for records in batch.values():
                    got += [r.value for r in records]
            await c.commit()
            return got
        finally:
            await c.stop()

    got = asyncio.run(main())
    assert got == [b"a%d" % i for i in range(20)]
