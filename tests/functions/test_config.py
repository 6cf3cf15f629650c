"""Binding properties from a file, the environment and code, in that precedence."""
import pytest

from klog.functions import BindingConfigError
from klog.functions import bindings as config

NAMES = ["emailsms-in-0", "emailsms-out-0"]


def resolve(tmp_path=None, text=None, suffix=".properties", env=None, code=None, sets=None):
    path = None
    if text is not None:
        path = tmp_path / f"app{suffix}"
        path.write_text(text)
    layer = None
    if code is not None:
        layer = config.Layer("code")
        for b, props in code.items():
            layer.bindings[b] = props
    layers = config.load_layers(path and str(path), env or {}, NAMES, layer, sets)
    return config.resolve(NAMES, layers, "message-service"), layers


def test_defaults_follow_spring():
    r, _ = resolve()
    cfg = r["emailsms-in-0"]
    assert (cfg.destination, cfg.group, cfg.max_attempts, cfg.back_off_initial_interval,
            cfg.back_off_multiplier, cfg.back_off_max_interval, cfg.concurrency) == \
        ("emailsms-in-0", "message-service", 3, 1000, 2.0, 10000, 1)


def test_precedence_file_env_code_set(tmp_path):
    text = ("# comment\ndefinition=email|sms\ndefault.max-attempts=7\n"
            "bindings.emailsms-in-0.destination=from-file\n"
            "bindings.emailsms-in-0.concurrency=2\nbindings.emailsms-in-0.back-off-multiplier=3\n")
    env = {"KLOG_BINDINGS_EMAILSMS_IN_0_CONCURRENCY": "4",
           "KLOG_BINDINGS_EMAILSMS_IN_0_BACK_OFF_MULTIPLIER": "1.5",
           "KLOG_DEFAULT_ENABLE_DLQ": "true"}
    r, layers = resolve(tmp_path, text, env=env,
                        code={"emailsms-in-0": {"back-off-multiplier": 5}},
                        sets=["bindings.emailsms-in-0.group=from-set"])
    cfg = r["emailsms-in-0"]
    assert cfg.destination == "from-file"          # file only
    assert cfg.concurrency == 4                    # env over file
    assert cfg.back_off_multiplier == 5.0          # code over env
    assert cfg.group == "from-set"                 # --set over code
    assert cfg.max_attempts == 7 and cfg.enable_dlq is True
    assert config.app_setting(layers, "definition") == "email|sms"


def test_toml_file(tmp_path):
    text = ('definition = "email|sms"\n[bindings.emailsms-in-0]\ndestination = "account-created"\n'
            '"max-attempts" = 5\n"retryable-exceptions" = { KeyError = false }\n')
    r, _ = resolve(tmp_path, text, suffix=".toml")
    cfg = r["emailsms-in-0"]
    assert (cfg.destination, cfg.max_attempts, cfg.retryable_exceptions) == \
        ("account-created", 5, {"KeyError": False})


def test_unknown_property_names_the_binding_and_suggests(tmp_path):
    with pytest.raises(BindingConfigError, match=r"binding 'emailsms-in-0' has no property "
                                                 r"'max-attempt'; did you mean 'max-attempts'"):
        resolve(code={"emailsms-in-0": {"max-attempt": 3}})


def test_bad_value_names_source_key_and_value(tmp_path):
    with pytest.raises(BindingConfigError, match=r"config file .*app.properties: "
                                                 r"emailsms-in-0.concurrency = 'x'"):
        resolve(tmp_path, "bindings.emailsms-in-0.concurrency=x\n")


def test_binding_not_in_definition_is_an_error_in_code():
    with pytest.raises(BindingConfigError, match="'emailsms-in-1' is not bound.*did you mean "
                                                 "'emailsms-in-0'"):
        resolve(code={"emailsms-in-1": {"destination": "x"}})


def test_bad_file_line(tmp_path):
    with pytest.raises(BindingConfigError, match="line 1: expected key=value"):
        resolve(tmp_path, "just words\n")
