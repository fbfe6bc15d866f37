"""BENCHMARKS.md sections: rewritten in place, read back row by row."""

from components.reporting import markdown_table, rows_in_section, write_section


def test_section_is_replaced_and_the_rest_of_the_file_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nintro kept\n")
    write_section(path, "sentiment", "first")
    write_section(path, "sentiment", "second")
    text = path.read_text()
    assert "intro kept" in text and "second" in text and "first" not in text
    assert text.count("<!-- bench:sentiment:start -->") == 1


def test_rows_written_to_a_section_are_read_back(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    rows = [
        {"run": "lstm", "test accuracy": "**0.85**", "measured": "2026-11-24, `make bench`"},
        {"run": "gru", "test accuracy": "**0.86**", "measured": "2026-11-24, `make bench`"},
    ]
    write_section(path, "sentiment", f"Machine: x\n\n{markdown_table(rows)}")
    assert rows_in_section(path, "sentiment") == rows
    assert rows_in_section(path, "language_model") == []


def test_rows_with_empty_last_cells_are_read_back(tmp_path):
    """Word- and character-level rows fill different columns, so some rows end in empty cells."""
    path = tmp_path / "BENCHMARKS.md"
    rows = [
        {"run": "ptb-lstm", "test perplexity": "112.29", "valid nats/char": ""},
        {"run": "char-lstm", "test perplexity": "4.60", "valid nats/char": "1.3669"},
    ]
    write_section(path, "language_model", f"Machine: x\n\n{markdown_table(rows)}")
    assert rows_in_section(path, "language_model") == rows
