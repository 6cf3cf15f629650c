"""definition parsing, composition rules and binding names (Spring's)."""
import pytest

from klog.functions import App, DefinitionError
from klog.functions.composition import Pipeline, parse_definition


def make_app():
    app = App("svc")

    @app.function
    def email(e: dict) -> dict:
        return e

    @app.function
    def sms(e: dict) -> dict:
        return e

    @app.consumer
    def sink(e):
        pass

    @app.supplier
    def tick():
        return {"t": 1}
    return app


def test_composition_binding_names_join_function_names():
    app = make_app()
    chains = parse_definition("email|sms", app.registry)
    p = Pipeline(chains[0], "application/json")
    assert (p.in_binding, p.out_binding) == ("emailsms-in-0", "emailsms-out-0")


def test_several_pipelines_with_semicolon():
    app = make_app()
    ps = [Pipeline(c, "application/json") for c in parse_definition("email;tick|sms;sink", app.registry)]
    assert [(p.in_binding, p.out_binding) for p in ps] == [
        ("email-in-0", "email-out-0"), (None, "ticksms-out-0"), ("sink-in-0", None)]


def test_unknown_function_is_an_error_naming_it():
    with pytest.raises(DefinitionError, match="unknown function 'emial'.*did you mean 'email'"):
        parse_definition("emial|sms", make_app().registry)


def test_nothing_declared_binds_nothing():
    with pytest.raises(DefinitionError, match="declares no functions"):
        parse_definition(None, App("empty").registry)


def test_several_functions_need_a_definition():
    with pytest.raises(DefinitionError, match="several functions"):
        parse_definition(None, make_app().registry)


def test_single_function_is_chosen_without_definition():
    app = App("one")

    @app.function
    def only(x):
        return x
    assert [f.name for f in parse_definition(None, app.registry)[0]] == ["only"]


def test_supplier_only_first_consumer_only_last():
    app = make_app()
    with pytest.raises(DefinitionError, match="supplier 'tick' can only come first"):
        parse_definition("email|tick", app.registry)
    with pytest.raises(DefinitionError, match="consumer 'sink' can only come last"):
        parse_definition("sink|email", app.registry)
    with pytest.raises(DefinitionError, match="empty function name"):
        parse_definition("email||sms", app.registry)


def test_start_with_unknown_name_fails_before_touching_the_broker(klog_broker):
    with pytest.raises(DefinitionError, match="unknown function 'nope'"):
        make_app().start(klog_broker, definition="nope")
    assert klog_broker.list_topics() == []
