import dataclasses
from types import SimpleNamespace

import pytest

from components.errors import ConfigError
from components.reporting import markdown_table, rows_in_section
from pipelines import benchmark, registry
from pipelines.language_model import pipeline as language_model
from pipelines.sentiment import pipeline as sentiment


def test_training_columns_name_the_throughput_unit():
    training = {
        "epochs_run": 3,
        "best_epoch": 2,
        "train_wall_time_s": 90.0,
        "train_tokens_per_s": 1234.5,
        "parameters": 1234,
    }
    columns = benchmark._training_columns(training)
    assert columns == {
        "epochs (best)": "3 (2)",
        "train wall time": "1.5 min",
        "train tokens/s": "1,234",
        "parameters": "1,234",
    }


def test_pipeline_columns_and_table():
    by_length = {
        "1-100": {"examples": 3, "accuracy": 0.9},
        "over_100": {"examples": 1, "accuracy": 0.5},
    }
    sentiment_row = sentiment.benchmark_columns(
        {"accuracy": 0.88, "roc_auc": 0.95, "f1": 0.87, "by_length": by_length}
    )
    assert (
        sentiment_row["test accuracy"] == "**0.8800**"
        and sentiment_row["acc. over_100 words"] == "0.500"
    )
    split = {"tokens": 10, "perplexity": 115.94, "nats_per_token": 4.753, "bits_per_token": 6.857}
    lm_row = language_model.benchmark_columns({"unit": "token", "validation": split, "test": split})
    assert lm_row["test perplexity"] == "**115.94**"
    table = markdown_table([{"run": "a", **lm_row}, {"run": "b", **lm_row}]).splitlines()
    assert table[0].startswith("| run | valid perplexity |") and len(table) == 4
    diverged = {**split, "perplexity": 8.31e122, "nats_per_token": 282.0}
    diverged_row = language_model.benchmark_columns(
        {"unit": "token", "validation": split, "test": diverged}
    )
    assert diverged_row["test perplexity"] == "**8.31e+122**"  # not 123 digits


def test_unknown_benchmark_run_lists_the_valid_ones(tmp_path):
    valid = "choose from: bigru-ngram, simplernn, lstm, gru, bilstm, bigru"
    with pytest.raises(ConfigError, match=valid):
        benchmark.run("sentiment", ["transformer"], tmp_path / "B.md", [])


def test_sales_rows_report_backtest_means_and_one_row_per_baseline():
    from pipelines.sales_forecast import pipeline as sales_forecast

    scores = {"wmae": 900.0, "mae": 1000.0, "rmse": 2000.0, "wape": 0.1, "smape": 0.2, "mase": 0.9}
    reference = {**scores, "wmae": 1200.0, "mase": None}
    metrics = {
        "folds": 3,
        "model_name": "gru_x1_direct",
        "mean": {"gru_x1_direct": scores, "seasonal_naive": reference},
        "relative_to_seasonal_naive": {"gru_x1_direct": 0.25, "seasonal_naive": 0.0},
        "per_fold": [{"gru_x1_direct": {"wmae": 800.0}, "seasonal_naive": {"wmae": 1100.0}}],
        "train_wall_time_s": 600.0,
    }
    row = sales_forecast.benchmark_columns(metrics)
    assert row["backtest WMAE (3 folds)"] == "**900**" and row["vs seasonal naive"] == "+25.0%"
    assert row["train wall time, all folds"] == "10.0 min" and row["test-fold WMAE"] == "800"
    (baseline,) = sales_forecast.benchmark_reference_rows(metrics)
    assert baseline["run"] == "baseline: seasonal_naive" and baseline["MASE"] == "n/a"


def test_a_row_over_seeds_is_mean_and_std_in_each_cells_format():
    cells = [
        {
            "test accuracy": "**0.8716**",
            "relative": "+7.2%",
            "tokens/s": "1,200",
            "epochs": "6 (2)",
        },
        {
            "test accuracy": "**0.8802**",
            "relative": "+9.4%",
            "tokens/s": "1,300",
            "epochs": "6 (2)",
        },
        {
            "test accuracy": "**0.8759**",
            "relative": "+8.3%",
            "tokens/s": "1,250",
            "epochs": "5 (1)",
        },
    ]
    assert benchmark.over_seeds(cells) == {
        "test accuracy": "**0.8759 ± 0.0043**",
        "relative": "+8.3 ± 1.1%",
        "tokens/s": "1,250 ± 50",
        "epochs": "6 (2) / 6 (2) / 5 (1)",
    }
    assert benchmark.over_seeds(cells[:1]) == cells[0]


def finished_run(run_dir, metrics: dict) -> SimpleNamespace:
    """What ``run_pipeline`` returns for a sentiment run whose evaluation scored ``metrics``."""
    training = {"epochs_run": 1, "best_epoch": 1, "train_wall_time_s": 60.0, "parameters": 1}
    training["train_reviews_per_s"] = 100.0
    artifact = SimpleNamespace(load=lambda: metrics, summary=lambda: training)
    return SimpleNamespace(run_dir=run_dir, outputs={"train": artifact, "evaluate": artifact})


def test_upstream_runs_go_first_and_each_hands_its_run_folder_on(monkeypatch, tmp_path):
    from pipelines.spec import UPSTREAM, BenchmarkRun, UpstreamRun

    resolved, ran = [], []

    def resolve_config(pipeline, config_file, preset, overrides):
        resolved.append((pipeline, config_file.name, overrides))
        return pipeline

    def run_pipeline(pipeline, config, stages, root, use_cache):
        ran.append((pipeline, [stage.name for stage in stages], use_cache))
        return finished_run(tmp_path / pipeline / f"run{len(ran)}", {"accuracy": 0.9})

    monkeypatch.setattr(benchmark.registry, "resolve_config", resolve_config)
    monkeypatch.setattr(benchmark, "run_pipeline", run_pipeline)
    row = BenchmarkRun(
        "sentiment.yaml",
        "bigru",
        (f"model.init_from={UPSTREAM}",),
        upstream=(
            UpstreamRun("sentiment", "sentiment.yaml", stages=("ingest",)),
            UpstreamRun("language_model", "imdb_reviews_lm.yaml", (f"data.path={UPSTREAM}",)),
        ),
    )
    columns = dataclasses.replace(sentiment.SPEC.benchmark, columns=lambda metrics: {})
    benchmark._measure(dataclasses.replace(sentiment.SPEC, benchmark=columns), row, [])

    assert [pipeline for pipeline, _, _ in ran] == ["sentiment", "language_model", "sentiment"]
    assert ran[0][1] == ["ingest"] and "export" not in ran[1][1] and not ran[2][2]
    assert resolved[1][2] == [f"data.path={tmp_path / 'sentiment' / 'run1'}"]
    assert resolved[2][2] == [f"model.init_from={tmp_path / 'language_model' / 'run2'}"]


def test_a_headline_row_can_be_measured_one_seed_at_a_time(monkeypatch, tmp_path):
    seeds_run = []

    def run_pipeline(pipeline, config, stages, root, use_cache):
        seed = int(config[-1].removeprefix("train.seed="))
        seeds_run.append(seed)
        return finished_run(tmp_path, {"accuracy": 0.8 + (seed - 42) / 100})

    monkeypatch.setattr(
        benchmark.registry, "resolve_config", lambda pipeline, file, preset, overrides: overrides
    )
    monkeypatch.setattr(benchmark, "run_pipeline", run_pipeline)
    columns = dataclasses.replace(
        sentiment.SPEC.benchmark,
        columns=lambda metrics: {"test accuracy": f"{metrics['accuracy']:.4f}"},
    )
    spec = dataclasses.replace(sentiment.SPEC, benchmark=columns)
    monkeypatch.setattr(benchmark.registry, "get", lambda pipeline: spec)
    output = tmp_path / "BENCHMARKS.md"

    def bigru_row(seeds):
        benchmark.run("sentiment", ["bigru"], output, [], seeds)
        (row,) = [row for row in rows_in_section(output, "sentiment") if row["run"] == "bigru"]
        return row

    row = bigru_row([43])
    assert seeds_run == [43] and row["test accuracy"] == "0.8100"
    assert "seed(s) 43 of 42, 43, 44 so far (SEEDS='42 44' measures the rest)" in row["measured"]
    row = bigru_row([44, 42])
    assert seeds_run == [43, 44, 42] and row["test accuracy"] == "0.8100 ± 0.0100"
    assert row["measured"].endswith(
        "`make bench-sentiment MODELS=bigru`, mean ± std over seeds 42, 43, 44"
    )
    # Another command (other overrides) is another measurement: its seeds start afresh.
    benchmark.run("sentiment", ["bigru"], output, ["train.epochs=1"], [42])
    (row,) = [row for row in rows_in_section(output, "sentiment") if row["run"] == "bigru"]
    assert row["test accuracy"] == "0.8000" and "seed(s) 42 of 42, 43, 44 so far" in row["measured"]

    with pytest.raises(ConfigError, match=r"no seed\(s\) \[7\]; its seeds: 42, 43, 44"):
        benchmark.run("sentiment", ["bigru"], output, [], [7])
    with pytest.raises(ConfigError, match="'gru' is measured once, not over seeds"):
        benchmark.run("sentiment", ["bigru", "gru"], output, [], [42])
    assert len(seeds_run) == 4  # a bad request runs nothing


def test_each_row_names_the_cpu_it_was_measured_on(monkeypatch, tmp_path):
    """Sittings land on VMs with different CPUs: a row's wall time says which, seed by seed."""
    monkeypatch.setattr(
        benchmark.registry, "resolve_config", lambda pipeline, file, preset, overrides: overrides
    )
    monkeypatch.setattr(
        benchmark, "run_pipeline", lambda *args, **kwargs: finished_run(tmp_path, {})
    )
    columns = dataclasses.replace(sentiment.SPEC.benchmark, columns=lambda metrics: {})
    monkeypatch.setattr(
        benchmark.registry,
        "get",
        lambda pipeline: dataclasses.replace(sentiment.SPEC, benchmark=columns),
    )
    output = tmp_path / "BENCHMARKS.md"

    def rows(cpu, models, seeds=None):
        monkeypatch.setattr(benchmark, "cpu_model", lambda: cpu)
        benchmark.run("sentiment", models, output, [], seeds)
        return {row["run"]: row for row in rows_in_section(output, "sentiment")}

    assert rows("Intel Xeon", ["gru"])["gru"]["CPU"] == "Intel Xeon"
    assert rows("Intel Xeon", ["bigru"], [42])["bigru"]["CPU"] == "Intel Xeon"
    measured = rows("AMD EPYC", ["bigru"], [43, 44])
    assert measured["bigru"]["CPU"] == "Intel Xeon / AMD EPYC / AMD EPYC"
    assert measured["gru"]["CPU"] == "Intel Xeon"  # kept from its own sitting
    machine = next(line for line in output.read_text().splitlines() if line.startswith("Machine"))
    assert "AMD" not in machine and "each row's CPU model in its CPU column" in machine
    # A seed stored before rows named their CPU leaves its cell empty, not the row unwritten.
    assert benchmark.over_seeds([{"a": "1"}, {"a": "2", "CPU": "AMD EPYC"}])["CPU"] == " / AMD EPYC"


@pytest.mark.parametrize("pipeline", list(registry.PIPELINES))
def test_every_benchmark_row_resolves_to_a_valid_config(pipeline, tmp_path):
    """A misspelt override in a row would otherwise surface an hour into ``make bench-*``."""
    spec = registry.get(pipeline)
    for name, row in spec.benchmark.runs.items():
        for upstream in row.upstream:
            filled = benchmark._filled(upstream.overrides, tmp_path)
            registry.resolve_config(
                upstream.pipeline, benchmark.CONFIG_DIR / upstream.config_file, None, filled
            )
        try:
            _row_config(pipeline, row, tmp_path)
        except ConfigError as error:
            pytest.fail(f"benchmark row {name!r}: {error}")


@pytest.mark.parametrize("pipeline", list(registry.PIPELINES))
def test_rows_that_share_reference_rows_read_the_same_data(pipeline, tmp_path):
    """Reference rows (baselines) are named by the row's ``dataset``, the last run's overwriting
    the others': two rows under one name must ingest the same data, or the table would show one
    split's baselines beside another split's model."""
    spec = registry.get(pipeline)
    ingest_sections = spec.stages[0].config_sections
    seen: dict[str, tuple[str, dict]] = {}
    for name, row in spec.benchmark.runs.items():
        config = _row_config(pipeline, row, tmp_path)
        data = {
            section: dataclasses.asdict(getattr(config, section)) for section in ingest_sections
        }
        first, first_data = seen.setdefault(row.dataset, (name, data))
        assert data == first_data, f"rows {first!r} and {name!r} share dataset {row.dataset!r}"


def _row_config(pipeline, row, upstream_dir):
    """A benchmark row's resolved config, ``{upstream}`` filled with ``upstream_dir``."""
    overrides = benchmark._filled(row.overrides, upstream_dir if row.upstream else None)
    return registry.resolve_config(
        pipeline, benchmark.CONFIG_DIR / row.config_file, row.preset, overrides
    )
