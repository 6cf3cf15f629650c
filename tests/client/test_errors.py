"""One error model: exceptions carry Kafka's code from one table, the server answers with it,
and the wire backend maps confluent-kafka's KafkaError codes back to the same classes."""
import confluent_kafka as ck
import pytest

import klog
from klog import errors
from klog.client.wire import map_error
from klog.error_codes import ErrorCode
from klog.group import errors as group_errors
from klog.protocol.errors import ErrorCode as ProtocolErrorCode
from klog.server.handlers import ERROR_CODES, error_code


def test_one_table_of_codes():
    assert ProtocolErrorCode is ErrorCode
    for name in ("UNKNOWN_TOPIC_OR_PARTITION", "REBALANCE_IN_PROGRESS", "NON_EMPTY_GROUP",
                 "FENCED_INSTANCE_ID", "ILLEGAL_GENERATION"):
        assert getattr(group_errors, name) == ErrorCode[name]
    assert group_errors.error_name(27) == "REBALANCE_IN_PROGRESS"


def test_every_coded_class_maps_back_to_itself():
    for code, cls in errors.ERRORS.items():
        assert cls.error_code == code
        exc = errors.error_for(code, "m")
        assert type(exc) is cls and exc.error_code == code and exc.error_name == ErrorCode(code).name
    assert errors.error_for(0) is None


def test_server_table_agrees_with_the_classes():
    for cls, code in ERROR_CODES:
        if cls.__dict__.get("error_code") is not None or getattr(cls, "error_code", None) is not None:
            assert cls.error_code == code, cls
    assert error_code(errors.TopicExistsError("x")) == ErrorCode.TOPIC_ALREADY_EXISTS
    assert error_code(errors.InternalTopicError("x")) == ErrorCode.INVALID_REQUEST
    assert error_code(group_errors.RebalanceInProgressError()) == ErrorCode.REBALANCE_IN_PROGRESS
    assert error_code(RuntimeError()) == ErrorCode.UNKNOWN_SERVER_ERROR


def test_group_errors_keep_their_code_attribute():
    assert group_errors.RebalanceInProgressError().code == 27
    assert group_errors.RebalanceInProgressError.error_code == 27
    assert isinstance(errors.error_for(-1), errors.UnknownServerError)


@pytest.mark.parametrize("kafka_code, cls", [
    (ck.KafkaError.UNKNOWN_TOPIC_OR_PART, errors.UnknownTopicOrPartitionError),
    (ck.KafkaError.TOPIC_ALREADY_EXISTS, errors.TopicExistsError),
    (ck.KafkaError.REBALANCE_IN_PROGRESS, group_errors.RebalanceInProgressError),
    (ck.KafkaError.MSG_SIZE_TOO_LARGE, errors.RecordTooLargeError),
    (ck.KafkaError.INVALID_CONFIG, errors.ConfigError),
    (ck.KafkaError._UNKNOWN_TOPIC, errors.UnknownTopicOrPartitionError),
    (ck.KafkaError._UNKNOWN_PARTITION, errors.UnknownTopicOrPartitionError),
    (ck.KafkaError._MSG_TIMED_OUT, errors.RequestTimedOutError),
    (ck.KafkaError._TRANSPORT, errors.NetworkError),
    (ck.KafkaError._ALL_BROKERS_DOWN, errors.NetworkError),
])
def test_wire_maps_kafka_error_codes_onto_klog_classes(kafka_code, cls):
    exc = map_error(ck.KafkaError(kafka_code), "doing it")
    assert type(exc) is cls
    assert "doing it" in str(exc)
    assert isinstance(map_error(ck.KafkaException(ck.KafkaError(kafka_code))), cls)


def test_code_without_a_class_keeps_the_code():
    exc = map_error(ck.KafkaError(ck.KafkaError.POLICY_VIOLATION))
    assert isinstance(exc, errors.BrokerResponseError)
    assert exc.error_code == 44 and exc.error_name == "POLICY_VIOLATION"


def test_unreachable_broker_is_a_network_or_timeout_error(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there
    import klog.client.wire as wire
    old, wire.REQUEST_TIMEOUT_S = wire.REQUEST_TIMEOUT_S, 2.0
    try:
        c = klog.connect(f"kafka://127.0.0.1:{port}")
        with pytest.raises((errors.NetworkError, errors.RequestTimedOutError)):
            c.list_topics()
    finally:
        wire.REQUEST_TIMEOUT_S = old
