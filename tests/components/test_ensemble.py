import keras
import numpy as np
import pytest
import tensorflow as tf

from components import ensemble, train
from components.ensemble import EnsembleConfig
from components.errors import ConfigError
from components.train import TrainConfig


def fit_member(tmp_path, name: str, seed: int, outputs: int = 1):
    """A small regressor with a dict input (a number and an unused string id), trained briefly."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 3)).astype("float32")
    inputs = {"x": x, "id": np.array(["a"] * 128)}
    y = np.repeat(x.sum(axis=1, keepdims=True), outputs, axis=1)
    data = tf.data.Dataset.from_tensor_slices((inputs, y)).batch(32)

    def build():
        layer_inputs = {
            "x": keras.Input((3,), name="x"),
            "id": keras.Input((), dtype="string", name="id"),
        }
        hidden = keras.layers.Dense(8, activation="relu")(layer_inputs["x"])
        return keras.Model(layer_inputs, keras.layers.Dense(outputs)(hidden), name="regressor")

    return train.run(
        TrainConfig(epochs=2, batch_size=32, seed=seed),
        build_model=build,
        data=train.TrainingData(data, data, samples_per_epoch=128, sample_unit="rows"),
        loss="mae",
        metrics=[],
        out_dir=tmp_path / name,
    )


def test_the_ensemble_outputs_the_mean_of_its_members_and_survives_saving(tmp_path):
    members = [fit_member(tmp_path, "a", seed=1), fit_member(tmp_path, "b", seed=2)]
    trained = ensemble.run(members, "ensemble_of_2_regressor", tmp_path / "ensemble")
    model = trained.load()  # from model.keras: the members travel inside it
    assert model.name == "ensemble_of_2_regressor"
    inputs = {"x": np.ones((4, 3), "float32"), "id": np.array(["a", "b", "c", "d"])}
    first, second = (np.asarray(member.load()(inputs)) for member in members)
    assert not np.allclose(first, second)  # different seeds, different members
    np.testing.assert_allclose(np.asarray(model(inputs)), (first + second) / 2, rtol=1e-5)


def test_the_summary_adds_up_the_members(tmp_path):
    members = [fit_member(tmp_path, "a", seed=1), fit_member(tmp_path, "b", seed=2)]
    summary = ensemble.run(members, "pair", tmp_path / "ensemble").summary()
    parts = [member.summary() for member in members]
    assert summary["parameters"] == sum(part["parameters"] for part in parts)
    assert summary["train_wall_time_s"] == pytest.approx(
        sum(part["train_wall_time_s"] for part in parts), abs=0.1
    )
    assert summary["epochs_run"] == "2+2" and summary["members"] == parts
    history = ensemble.run(members, "pair", tmp_path / "again").history()
    assert history["member_1_val_loss"] == members[1].history()["val_loss"]


def test_members_with_different_output_shapes_are_refused_by_name(tmp_path):
    members = [fit_member(tmp_path, "a", seed=1), fit_member(tmp_path, "b", seed=2, outputs=2)]
    with pytest.raises(ConfigError, match="ensemble member regressor .* same inputs and output"):
        ensemble.run(members, "pair", tmp_path / "ensemble")


@pytest.mark.parametrize(
    "members, message",
    [
        ([{"train.seed": 1}], "lists one member"),
        ([{"train.seed": 1}, {"train.seed": 1}], r"members\[1\] .* repeats an earlier member"),
    ],
)
def test_ensemble_config_refuses_one_member_or_a_repeated_one(members, message):
    with pytest.raises(ConfigError, match=message):
        EnsembleConfig(members=members)


def test_a_seed_ensemble_trains_each_member_once_per_seed():
    assert EnsembleConfig().member_overrides(seed=42) == []  # a single model
    assert EnsembleConfig(seeds=3).member_overrides(seed=42) == [
        {"train.seed": 42},
        {"train.seed": 43},
        {"train.seed": 44},
    ]
    members = [{"model.cell": "gru"}, {"model.cell": "lstm", "train.seed": 7}]
    assert EnsembleConfig(members=members, seeds=2).member_overrides(seed=42) == [
        {"model.cell": "gru", "train.seed": 42},
        {"model.cell": "gru", "train.seed": 43},
        {"model.cell": "lstm", "train.seed": 7},
        {"model.cell": "lstm", "train.seed": 8},
    ]
    assert EnsembleConfig(members=members).member_overrides(seed=42) == members
    one = [{"model.cell": "lstm"}]  # one member is an ensemble once it has seeds
    assert len(EnsembleConfig(members=one, seeds=2).member_overrides(seed=0)) == 2
    with pytest.raises(ConfigError, match="ensemble.seeds=0 must be >= 1"):
        EnsembleConfig(seeds=0)
    close = EnsembleConfig(members=[{"train.seed": 1}, {"train.seed": 2}], seeds=2)
    with pytest.raises(ConfigError, match=r"train \{'train.seed': 2\} twice"):
        close.member_overrides(seed=0)
