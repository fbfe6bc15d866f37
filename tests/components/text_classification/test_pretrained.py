"""Starting a classifier from a word-level language model: what is copied, what is refused."""

import json

import numpy as np
import pytest

from components.errors import ConfigError
from components.language_modeling.model import LanguageModelConfig, build_language_model
from components.text_classification import pretrained
from components.text_classification.model import TextClassifierConfig, build_text_classifier

LM_VOCABULARY = ["<unk>", "the", "movie", "great", "awful", "<eos>"]
CLASSIFIER_VOCABULARY = ["", "[UNK]", "movie", "the", "plot", "great"]


def language_model_run(
    root, level="word", embedding_dim=8, units=8, vocabulary=LM_VOCABULARY, layers=1
):
    """A language_model run folder as the runner writes it: manifests naming each output."""
    run_dir = root / "artifacts" / "language_model" / "20261201-000000-abcdef"
    tokenized, trained = run_dir / "tokenize" / "tokenized", run_dir / "train" / "trained_model"
    tokenized.mkdir(parents=True)
    trained.mkdir(parents=True)
    (tokenized / "tokenizer.json").write_text(json.dumps({"level": level}))
    (tokenized / "vocabulary.json").write_text(json.dumps(vocabulary))
    config = LanguageModelConfig(
        cell="gru", layers=layers, units=units, embedding_dim=embedding_dim
    )
    build_language_model(config, len(vocabulary)).save(trained / "model.keras")
    for stage, output in (("tokenize", tokenized), ("train", trained)):
        manifest = {"pipeline": "language_model", "mlflow_run_id": f"mlflow-{stage}"}
        manifest["output"] = {"path": str(output)}
        (run_dir / stage / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def classifier(bidirectional=False, embedding_dim=8, units=8, cell="gru", layers=1):
    config = TextClassifierConfig(
        cell=cell, bidirectional=bidirectional, units=units, embedding_dim=embedding_dim,
        layers=layers,
    )  # fmt: skip
    return build_text_classifier(config, len(CLASSIFIER_VOCABULARY), sequence_length=5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_embeddings_are_copied_by_token_and_the_recurrent_layer_by_name(tmp_path, bidirectional):
    language_model = pretrained.find(language_model_run(tmp_path))
    model = classifier(bidirectional)
    before = model.get_layer("embedding").get_weights()[0].copy()
    backward_before = (
        [w.copy() for w in model.get_layer("bigru_0").backward_layer.get_weights()]
        if bidirectional
        else None
    )

    copied = pretrained.initialize(model, language_model, CLASSIFIER_VOCABULARY)

    source = language_model.load().get_layer("embedding").get_weights()[0]
    embeddings = model.get_layer("embedding").get_weights()[0]
    for index, token in enumerate(CLASSIFIER_VOCABULARY):
        if token in LM_VOCABULARY:
            np.testing.assert_array_equal(embeddings[index], source[LM_VOCABULARY.index(token)])
    np.testing.assert_array_equal(embeddings[1], source[0])  # [UNK] <- <unk>
    np.testing.assert_array_equal(embeddings[4], before[4])  # "plot": not in the LM, kept
    assert copied == {"init_shared_tokens": 0.75, "init_recurrent_layers": 1}

    lm_gru = language_model.load().get_layer("gru_0").get_weights()
    layer = model.get_layer("bigru_0").forward_layer if bidirectional else model.get_layer("gru_0")
    for got, want in zip(layer.get_weights(), lm_gru, strict=True):
        np.testing.assert_array_equal(got, want)
    if bidirectional:  # the backward direction reads the other way: it starts fresh
        after = model.get_layer("bigru_0").backward_layer.get_weights()
        for got, want in zip(after, backward_before, strict=True):
            np.testing.assert_array_equal(got, want)


def test_a_second_bidirectional_layer_reading_both_directions_starts_fresh(tmp_path, caplog):
    language_model = pretrained.find(language_model_run(tmp_path, layers=2))
    model = classifier(bidirectional=True, layers=2)
    copied = pretrained.initialize(model, language_model, CLASSIFIER_VOCABULARY)
    assert copied["init_recurrent_layers"] == 1
    assert "gru_1 not initialized: the layer below feeds it both directions" in caplog.text


def test_a_mismatched_vocabulary_is_refused(tmp_path):
    language_model = pretrained.find(
        language_model_run(tmp_path, vocabulary=["<unk>", "le", "film", "génial"])
    )
    with pytest.raises(ConfigError, match=r"only 0% of the classifier's 4 tokens .* tokenized"):
        pretrained.initialize(classifier(), language_model, CLASSIFIER_VOCABULARY)


def test_other_sizes_or_cells_are_refused_with_the_setting_to_change(tmp_path):
    language_model = pretrained.find(language_model_run(tmp_path))
    with pytest.raises(ConfigError, match="16 dimensions, model.embedding_dim is 8"):
        pretrained.initialize(
            classifier(), pretrained.find(language_model_run(tmp_path / "b", embedding_dim=16)),
            CLASSIFIER_VOCABULARY,
        )  # fmt: skip
    for bidirectional in (False, True):
        with pytest.raises(ConfigError, match="set model.units"):
            pretrained.initialize(
                classifier(bidirectional, units=4), language_model, CLASSIFIER_VOCABULARY
            )
    with pytest.raises(ConfigError, match="set model.cell"):
        pretrained.initialize(classifier(cell="lstm"), language_model, CLASSIFIER_VOCABULARY)


def test_only_a_word_level_language_model_run_is_accepted(tmp_path):
    with pytest.raises(ConfigError, match="char-level language model"):
        pretrained.find(language_model_run(tmp_path, level="char"))
    with pytest.raises(ConfigError, match="expected a language_model pipeline run folder"):
        pretrained.find(tmp_path / "nowhere")


def test_the_train_stage_records_where_the_weights_came_from(tmp_path):
    run_dir = language_model_run(tmp_path)
    state = pretrained.external_state(str(run_dir / "train"))
    assert state["init_from"] == str(run_dir.resolve())
    assert state["init_from_mlflow_run"] == "mlflow-train"
    assert pretrained.external_state(None) == {}
