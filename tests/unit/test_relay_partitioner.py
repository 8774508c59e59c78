"""The platform's partitioner puts every key where kafka-python's and aiokafka's defaults
(and Kafka's Java client) put it, remembering it per partition count."""

from uuid import uuid4

from aiokafka.partitioner import DefaultPartitioner as AioDefaultPartitioner
from kafka.partitioner import DefaultPartitioner

from crm_runtime.producers import RememberedPartitioner


class Cluster:
    def __init__(self, partitions: int):
        self.count = partitions

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return set(range(self.count))

    def available_partitions_for_topic(self, topic):
        return set(range(self.count))


def test_every_key_lands_where_the_default_partitioner_puts_it():
    default, remembered = DefaultPartitioner(), RememberedPartitioner(remember=50)
    keys = [str(uuid4()).encode() for _ in range(200)]
    for count in (3, 12, 3):  # a topic given more partitions, and a stale cluster view
        cluster = Cluster(count)
        for key in keys + keys:  # each key twice: the second time remembered (or forgotten: 50 at most)
            assert remembered.partition("t", key, key, b"v", b"v", cluster) == \
                default.partition("t", key, key, b"v", b"v", cluster)
            partitions = list(range(count))
            assert remembered(key, partitions, partitions) == AioDefaultPartitioner()(key, partitions, partitions)
    assert len(remembered._known) <= 50
    assert remembered.partition("t", None, None, b"v", b"v", Cluster(3)) in range(3)  # no key: any
    assert remembered(None, [0, 1, 2], [0, 1, 2]) in range(3)
