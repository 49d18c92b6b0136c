import pytest

from textcls.config import DataConfig, TrainConfig, from_dict, to_dict


@pytest.mark.parametrize(
    ("field", "value"),
    [("warmup_ratio", 1.2), ("lr", 0.0), ("epochs", 0), ("batch_size", 0), ("max_length", 4), ("precision", "fp8"),
     ("family", "gpt"), ("time_budget", -1.0)],
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
