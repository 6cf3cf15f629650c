"""Values decode by the function's type hints and encode by type / content type."""
import dataclasses
import json

import msgspec
import pydantic
import pytest

from klog.functions import Message, ValueDecodeError
from klog.functions.codec import InputType, encode


@dataclasses.dataclass
class Account:
    id: str
    email: str


class AccountModel(pydantic.BaseModel):
    id: str
    email: str


class AccountStruct(msgspec.Struct):
    id: str
    email: str


RAW = b'{"id": "a1", "email": "x@y"}'


@pytest.mark.parametrize("hint, expected", [
    (bytes, RAW),
    (str, RAW.decode()),
    (dict, {"id": "a1", "email": "x@y"}),
    (None, {"id": "a1", "email": "x@y"}),
    (Account, Account("a1", "x@y")),
    (AccountModel, AccountModel(id="a1", email="x@y")),
    (AccountStruct, AccountStruct("a1", "x@y")),
])
def test_decode_by_type_hint(hint, expected):
    assert InputType(hint).decode(RAW) == expected


def test_message_hint_gets_the_inner_type():
    it = InputType(Message[Account])
    assert it.message and it.decode(RAW) == Account("a1", "x@y")


def test_content_type_decides_without_a_hint():
    assert InputType(None, "text/plain").decode(b"hi") == "hi"
    assert InputType(None, "application/octet-stream").decode(b"hi") == b"hi"


@pytest.mark.parametrize("hint", [dict, Account, AccountModel, AccountStruct, list])
def test_undecodable_value_is_a_named_error(hint):
    with pytest.raises(ValueDecodeError, match="does not decode as"):
        InputType(hint).decode(b"\xff not json")


def test_wrong_json_shape_is_an_error():
    with pytest.raises(ValueDecodeError, match="expected a JSON dict, got list"):
        InputType(dict).decode(b"[1]")


def test_encode_outputs():
    assert encode(b"x") == b"x"
    assert encode("héllo", "text/plain") == "héllo".encode()
    assert json.loads(encode({"a": 1})) == {"a": 1}
    assert json.loads(encode(Account("a1", "x@y"))) == {"id": "a1", "email": "x@y"}
    assert json.loads(encode(AccountModel(id="a1", email="x@y"))) == {"id": "a1", "email": "x@y"}
    assert json.loads(encode(AccountStruct("a1", "x@y"))) == {"id": "a1", "email": "x@y"}
    assert encode(None) is None


def test_conversion_between_composed_functions():
    assert InputType(Account).convert({"id": "a1", "email": "x@y"}) == Account("a1", "x@y")
    assert InputType(bytes).convert({"a": 1}) == b'{"a":1}'
    assert InputType(dict).convert(b'{"a":1}') == {"a": 1}
