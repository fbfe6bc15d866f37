"""The attention classifier's ``explain`` signature through the local server's REST API."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import pytest
import tensorflow as tf

from components import export
from components.text_classification import signatures
from components.text_classification.vectorize import load_vectorizer
from serving import client
from serving.server import LocalModelServer
from tests.conftest import own_attention_weights, synthetic_review, write_blessing
from tests.serving.conftest import call

REVIEWS = [synthetic_review(1, random.Random(5), length=12), "Dull and awful."]


@pytest.fixture(scope="module")
def api(tiny_attention, tmp_path_factory):
    """``attention/1`` pushed by the export stage (warm-up included) and served."""
    root = tmp_path_factory.mktemp("explain")
    archive = partial(
        signatures.serving_archive, tiny_attention["train"], tiny_attention["preprocess"], 0.5
    )
    config = export.ExportConfig(
        model_name="attention", serving_dir=str(root / "models"), register=False
    )
    examples = {"text": tf.constant(signatures.SAMPLE_REVIEWS)}
    blessing = write_blessing(root / "bless")
    export.run(config, archive, examples, blessing, tiny_attention["train"], root / "push")
    with LocalModelServer(root / "models", port=0, poll_seconds=0.2) as running:
        yield running.url + "/v1/models/attention"


def test_metadata_lists_the_explain_signature(api):
    status, metadata = call(f"{api}/metadata")
    assert status == 200
    explain = metadata["metadata"]["signature_def"]["signature_def"]["explain"]
    outputs = {name: info["dtype"] for name, info in explain["outputs"].items()}
    assert outputs == {
        "tokens": "DT_STRING",
        "weights": "DT_FLOAT",
        "label": "DT_INT64",
        "label_name": "DT_STRING",
        "probability": "DT_FLOAT",
        "scores": "DT_FLOAT",
    }


def test_explain_answers_tokens_aligned_with_weights_and_the_prediction(api, tiny_attention):
    request = {"signature_name": "explain", "instances": REVIEWS}
    status, answer = call(f"{api}:predict", request)
    assert status == 200
    predicted = call(f"{api}:predict", {"instances": REVIEWS})[1]["predictions"]
    short = answer["predictions"][1]
    assert short["tokens"][:3] == ["dull", "and", "awful"]
    for explained, expected in zip(answer["predictions"], predicted, strict=True):
        assert explained["label_name"] == expected["label_name"]
        assert explained["probability"] == pytest.approx(expected["probability"], abs=1e-6)
        tokens, weights = np.array(explained["tokens"]), np.array(explained["weights"])
        assert tokens.shape == weights.shape == (13,)  # the longest review's tokens
        assert np.all(weights[tokens == ""] == 0.0)
        assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert answer["predictions"][0]["label_name"] == "positive"
    assert predicted[1]["label_name"] == "negative"
    # The model's own attention weights on the same ids: uniform weights would pass the above.
    token_ids = load_vectorizer(tiny_attention["preprocess"])(tf.constant(REVIEWS)).numpy()
    own = own_attention_weights(tiny_attention["train"], token_ids)[:, :13]
    served = [explained["weights"] for explained in answer["predictions"]]
    np.testing.assert_allclose(served, own, atol=1e-5)


def test_one_review_comes_back_without_padding_in_columnar_format(api):
    request = {"signature_name": "explain", "inputs": {"text": [REVIEWS[1]]}}
    status, answer = call(f"{api}:predict", request)
    assert status == 200
    assert answer["outputs"]["tokens"] == [["dull", "and", "awful"]]
    assert sum(answer["outputs"]["weights"][0]) == pytest.approx(1.0, abs=1e-5)


def test_the_client_prints_each_texts_most_weighted_words(api, capsys):
    url = api.split("/v1/models/")[0]
    arguments = ["--url", url, "--model", "attention", "--explain", "--top-words", "2"]
    assert client.main([*arguments, "--text", REVIEWS[0], "--text", REVIEWS[1]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[-1] for line in lines[::2]] == REVIEWS
    explained = client.explain_texts(url, "attention", [REVIEWS[1]])[0]
    expected = client.top_tokens(explained, 2)
    printed = [item.split()[0] for item in lines[3].strip().split(", ")]
    assert printed == [token for token, _ in expected]
    assert {token for token, _ in expected} <= {"dull", "and", "awful"}  # never the padding
