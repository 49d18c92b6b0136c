import pytest

from textcls.config import DataConfig, TrainConfig, from_dict, to_dict


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("warmup_ratio", 1.2),
        ("lr", 0.0),
        ("epochs", 0),
        ("batch_size", 0),
        ("max_length", 4),
        ("precision", "fp8"),
        ("family", "gpt"),
        ("time_budget", -1.0),
    ],
)
def test_train_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}: expected .* found {value!r}"):
        TrainConfig(**{field: value})


def test_data_config_rejects_data_and_train_file_together():
    with pytest.raises(ValueError, match="either a dataset"):
        DataConfig(data="x", train_file="y.csv")


def test_data_config_normalises_text_columns_and_round_trips():
    config = DataConfig(text_columns=(" title", "description ", ""))
    assert config.text_columns == ("title", "description")
    assert from_dict(DataConfig, to_dict(config)) == config


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().epochs = 5


@pytest.mark.parametrize(
    ("cls", "field", "value", "expected"),
    [
        (DataConfig, "max_train_samples", "300", "an integer"),
        (DataConfig, "multi_label", "false", "true or false"),
        (DataConfig, "skip_bad_rows", "no", "true or false"),
        (DataConfig, "text_columns", 5, "a list of names"),
        (TrainConfig, "epochs", "1", "a number"),
        (TrainConfig, "batch_size", True, "an integer"),
        (TrainConfig, "model", 3, "a string"),
    ],
)
def test_configs_reject_values_of_the_wrong_type_naming_the_field(cls, field, value, expected):
    """A --config file or the Python API can hand "300" for 300: an error naming the field, not a TypeError
    deep inside, and never a string "false" read as true."""
    from textcls.errors import ConfigError

    with pytest.raises(
        ConfigError, match=rf"^{field}: expected {expected}, found {value!r} \({type(value).__name__}\)"
    ):
        cls(**{field: value})


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seeds_out_of_numpy_range_are_refused(seed):
    from textcls.errors import ConfigError

    for cls in (DataConfig, TrainConfig):
        with pytest.raises(ConfigError, match=r"^seed: expected an integer in \[0, 4294967295\]"):
            cls(seed=seed)
    assert TrainConfig(seed=2**32 - 1).seed == 2**32 - 1 and TrainConfig(epochs=2).epochs == 2  # ints for floats
