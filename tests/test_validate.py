"""`lf-reasoning validate`: every way a dataset_info.json can fail in LLaMA-Factory 0.9.5, reported at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lf_reasoning.cli import main
from lf_reasoning.llamafactory.dataset_info import SHAREGPT_TAGS, alpaca_entry, sharegpt_entry
from lf_reasoning.llamafactory.validate import Problem, format_problems, validate_dataset_info

FIXTURES = Path(__file__).parent / "fixtures" / "validate"
THOUGHT = "<think>\nAdd them.\n</think>\n\n4"  # LLaMA-Factory's exact thought words


def chat(*turns: tuple[str, str], role: str = "role", content: str = "content") -> list[dict[str, str]]:
    return [{role: r, content: c} for r, c in turns]


SHAREGPT_RECORD = {"system": "", "messages": chat(("user", "2+2?"), ("assistant", THOUGHT))}
ALPACA_RECORD = {"instruction": "2+2?", "input": "", "output": THOUGHT, "system": "", "history": []}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def registry(tmp_path: Path, info: dict[str, Any], data: dict[str, list[Any]] | None = None) -> Path:
    """A dataset dir holding ``info`` as dataset_info.json and each ``data`` file as JSON Lines."""
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    for name, records in (data or {}).items():
        write_jsonl(tmp_path / name, records)
    return tmp_path


def messages(problems: list[Problem], severity: str, entry: str | None = "d") -> list[str]:
    return [p.message for p in problems if p.severity == severity and p.entry == entry]


def check(tmp_path: Path, entry: Any, data: dict[str, list[Any]] | None = None) -> list[Problem]:
    """Validate a registry with the single entry ``d``."""
    return validate_dataset_info(registry(tmp_path, {"d": entry}, data))


def cli(dataset_dir: Path, *names: str) -> Result:
    return CliRunner().invoke(main, ["validate", "--dataset-dir", str(dataset_dir), *names])


# --- the registry file ---------------------------------------------------------------------------------------


def test_clean_registry_passes(tmp_path: Path) -> None:
    registry(
        tmp_path,
        {"r1": sharegpt_entry("r1.jsonl"), "r1_alpaca": alpaca_entry("r1_alpaca.jsonl")},
        {"r1.jsonl": [SHAREGPT_RECORD] * 3, "r1_alpaca.jsonl": [ALPACA_RECORD]},
    )
    result = cli(tmp_path)
    assert result.exit_code == 0, result.output
    assert "error" not in result.output and "warning" not in result.output
    assert "ok: checked the first 3 records of r1.jsonl" in result.output
    assert result.output.rstrip().endswith("OK: 2 entries checked")


def test_missing_registry(tmp_path: Path) -> None:
    result = cli(tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "dataset_info.json: not found" in result.output
    assert result.output.rstrip().endswith("1 error, 0 warnings")


def test_unreadable_registry(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text('{"d": {"file_name": "a.json",}}')
    result = cli(tmp_path)
    assert result.exit_code == 1
    assert "dataset_info.json:1:" in result.output and "invalid JSON" in result.output


def test_byte_order_mark(tmp_path: Path) -> None:
    registry(tmp_path, {"d": sharegpt_entry("d.jsonl")}, {"d.jsonl": [SHAREGPT_RECORD]})
    path = tmp_path / "dataset_info.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert "byte order mark" in messages(validate_dataset_info(tmp_path), "error", None)[0]


def test_requested_name_absent_suggests_close_match(tmp_path: Path) -> None:
    registry(tmp_path, {"my_r1": sharegpt_entry("r1.jsonl")}, {"r1.jsonl": [SHAREGPT_RECORD]})
    result = cli(tmp_path, "my_r1", "my_r2")
    assert result.exit_code == 1
    assert "no entry 'my_r2'" in result.output and "did you mean 'my_r1'?" in result.output
    assert "ok: checked the first 1 record of r1.jsonl" in result.output  # the present name is still checked


def test_only_requested_names_are_checked(tmp_path: Path) -> None:
    registry(
        tmp_path,
        {"good": sharegpt_entry("r1.jsonl"), "bad": {"file_name": "missing.jsonl"}},
        {"r1.jsonl": [SHAREGPT_RECORD]},
    )
    assert cli(tmp_path, "good").exit_code == 0
    assert cli(tmp_path).exit_code == 1


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    registry(tmp_path, {"a": {"file_name": "a.jsonl", "colums": {}}, "b": [], "c": {"formatting": "sharegpt"}})
    result = cli(tmp_path)
    assert result.exit_code == 1
    for text in (
        "a\n",
        "unknown key 'colums'",
        "a.jsonl not found",
        "b\n",
        "entry is a JSON array",
        "c\n",
        "no data source",
    ):
        assert text in result.output
    assert result.output.rstrip().endswith("4 errors, 0 warnings")


def test_empty_registry_warns(tmp_path: Path) -> None:
    assert "holds no entries" in messages(validate_dataset_info(registry(tmp_path, {})), "warning", None)[0]


# --- entry shape ---------------------------------------------------------------------------------------------


def test_entry_not_an_object(tmp_path: Path) -> None:
    [message] = messages(check(tmp_path, "data.jsonl"), "error")
    assert "entry is a JSON string, not an object" in message


def test_no_source_key(tmp_path: Path) -> None:
    [message] = messages(check(tmp_path, {"formatting": "alpaca"}), "error")
    assert "no data source" in message and "file_name" in message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"file_name": "d.jsonl", "colums": {}},
            "unknown key 'colums', which LLaMA-Factory ignores (did you mean 'columns'?)",
        ),
        (
            {"file_name": "d.jsonl", "columns": {"promt": "instruction"}},
            "unknown key 'promt' in columns, which LLaMA-Factory ignores (did you mean 'prompt'?)",
        ),
        (
            {"file_name": "d.jsonl", "formatting": "sharegpt", "tags": {**SHAREGPT_TAGS, "role": "role"}},
            "unknown key 'role' in tags, which LLaMA-Factory ignores (did you mean 'role_tag'?)",
        ),
        (
            {"file_name": "d.jsonl", "columns": {"role_tag": "role"}},
            "unknown key 'role_tag' in columns, which LLaMA-Factory ignores; it belongs in tags",
        ),
        ({"file_name": "d.jsonl", "comment": "x"}, "unknown key 'comment', which LLaMA-Factory ignores; known keys:"),
    ],
)
def test_unknown_keys(tmp_path: Path, entry: dict[str, Any], expected: str) -> None:
    problems = check(tmp_path, entry, {"d.jsonl": [ALPACA_RECORD]})
    assert any(m.startswith(expected) for m in messages(problems, "error")), messages(problems, "error")


def test_unknown_formatting(tmp_path: Path) -> None:
    problems = check(tmp_path, {"file_name": "d.jsonl", "formatting": "sharegtp"}, {"d.jsonl": [ALPACA_RECORD]})
    assert messages(problems, "error") == [
        "formatting 'sharegtp' is not one of alpaca, sharegpt, openai (did you mean 'sharegpt'?)"
    ]


def test_ranking_not_bool(tmp_path: Path) -> None:
    entry = {**sharegpt_entry("d.jsonl"), "ranking": "true"}
    [message] = messages(check(tmp_path, entry, {"d.jsonl": [SHAREGPT_RECORD]}), "error")
    assert "ranking is 'true', not true or false" in message and "fits no training stage" in message


def test_value_types(tmp_path: Path) -> None:
    entry = {**sharegpt_entry("d.jsonl"), "num_samples": "100", "subset": None}
    entry["columns"] = {"messages": ["messages"]}
    errors = messages(check(tmp_path, entry, {"d.jsonl": [SHAREGPT_RECORD]}), "error")
    assert errors == [
        "num_samples is a JSON string; LLaMA-Factory needs a number",
        "columns.messages is a JSON array; it must be a string",
    ]


def test_split_on_local_file(tmp_path: Path) -> None:
    entry = {**sharegpt_entry("d.jsonl"), "split": "test"}
    [message] = messages(check(tmp_path, entry, {"d.jsonl": [SHAREGPT_RECORD]}), "error")
    assert message.startswith("split 'test' on a local file")


# --- partial columns and tags blocks -------------------------------------------------------------------------


def test_alpaca_columns_without_prompt_or_query(tmp_path: Path) -> None:
    problems = check(
        tmp_path, {"file_name": "d.jsonl", "columns": {"response": "output"}}, {"d.jsonl": [{"output": "4"}]}
    )
    [message] = messages(problems, "error")
    assert message.startswith("the columns block maps neither 'prompt' nor 'query'")


def test_alpaca_columns_without_response_only_suits_pretraining(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text("some text\nmore text\n")
    problems = check(tmp_path, {"file_name": "corpus.txt", "columns": {"prompt": "text"}})
    assert messages(problems, "error") == []
    [message] = messages(problems, "warning")
    assert "omits 'response'" in message and "pre-training (stage: pt)" in message


def test_sharegpt_columns_without_messages(tmp_path: Path) -> None:
    entry = {**sharegpt_entry("d.jsonl"), "columns": {"system": "system"}}
    problems = check(tmp_path, entry, {"d.jsonl": [SHAREGPT_RECORD]})
    assert messages(problems, "error") == [
        "the columns block omits 'messages' (LLaMA-Factory sets omitted "
        "columns to None): sharegpt conversion fails with KeyError: None"
    ]


def test_ranking_without_chosen_and_rejected(tmp_path: Path) -> None:
    problems = check(tmp_path, {"hf_hub_url": "org/prefs", "ranking": True})
    errors = messages(problems, "error")
    assert len(errors) == 2 and all("ranking is true but there is no columns block" in m for m in errors)
    assert "'chosen'" in errors[0] and "'rejected'" in errors[1]


def test_data_column_ignored_by_partial_columns(tmp_path: Path) -> None:
    record = {"instruction": "Add", "input": "2+2", "output": "4", "system": "Be brief."}
    problems = check(
        tmp_path,
        {"file_name": "d.jsonl", "columns": {"prompt": "instruction", "response": "output"}},
        {"d.jsonl": [record]},
    )
    assert messages(problems, "error") == []
    assert messages(problems, "warning") == [
        "the data has a column 'input' but no column maps 'query' to it, so LLaMA-Factory ignores it; "
        'add "query": "input" to columns',
        "the data has a column 'system' but no column maps 'system' to it, so LLaMA-Factory ignores it; "
        'add "system": "system" to columns',
    ]


def test_sharegpt_partial_tags(tmp_path: Path) -> None:
    entry = {**sharegpt_entry("d.jsonl"), "tags": {"role_tag": "role", "content_tag": "content"}}
    problems = check(tmp_path, entry, {"d.jsonl": [SHAREGPT_RECORD]})
    assert messages(problems, "error") == [
        "the tags block omits user_tag, assistant_tag (LLaMA-Factory sets omitted tags to None): "
        "no message can match; spell out every tag"
    ]
    assert messages(problems, "warning")[0].startswith("the tags block omits observation_tag, function_tag, system_tag")


def test_openai_without_tags(tmp_path: Path) -> None:
    entry = {"file_name": "d.jsonl", "formatting": "openai", "columns": {"messages": "messages"}}
    problems = check(tmp_path, entry, {"d.jsonl": [SHAREGPT_RECORD]})
    warnings = messages(problems, "warning")
    assert any("'detailed thinking off'" in m and "use formatting 'sharegpt'" in m for m in warnings)
    assert any(m.startswith("openai formatting without a tags block") for m in warnings)
    # and the data shows the defaults cannot work: LLaMA-Factory fails with KeyError: 'from'
    assert (
        f"messages have no 'from' key (role_tag), first at {tmp_path / 'd.jsonl'}:1; they have content, role: "
        "set tags.role_tag to the right key" in messages(problems, "error")
    )


def test_tags_ignored_with_alpaca(tmp_path: Path) -> None:
    entry = {**alpaca_entry("d.jsonl"), "tags": dict(SHAREGPT_TAGS)}
    problems = check(tmp_path, entry, {"d.jsonl": [ALPACA_RECORD]})
    assert messages(problems, "warning") == [
        "tags are ignored with alpaca formatting; did you mean formatting 'sharegpt'?"
    ]


# --- remote entries and files --------------------------------------------------------------------------------


def test_remote_entries_are_not_checked(tmp_path: Path) -> None:
    registry(
        tmp_path,
        {
            "hf": {"hf_hub_url": "org/data"},
            "ms": {"ms_hub_url": "org/data"},
            "script": {"script_url": "my_script"},
            "cloud": {"cloud_file_name": "s3://b/d.json"},
        },
    )
    result = cli(tmp_path)
    assert result.exit_code == 0, result.output
    assert "info: remote: not checked (hf_hub_url: org/data)" in result.output
    assert "info: remote: not checked (cloud_file_name: s3://b/d.json)" in result.output
    assert result.output.rstrip().endswith("OK: 0 entries checked, 4 remote entries not checked")


def test_hub_url_shadows_file_name(tmp_path: Path) -> None:
    problems = check(tmp_path, {"file_name": "d.jsonl", "hf_hub_url": "org/data"})
    assert messages(problems, "warning") == [
        "has both hf_hub_url and file_name: LLaMA-Factory loads hf_hub_url and ignores file_name"
    ]


def test_missing_file(tmp_path: Path) -> None:
    result = cli(registry(tmp_path, {"d": sharegpt_entry("r1.jsonl")}))
    assert result.exit_code == 1
    assert f"error: file_name 'r1.jsonl': {tmp_path / 'r1.jsonl'} not found" in result.output


def test_compressed_file_is_unsupported(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl.gz").write_bytes(b"")
    [message] = messages(check(tmp_path, sharegpt_entry("d.jsonl.gz")), "error")
    assert "unsupported file type: d.jsonl.gz (LLaMA-Factory cannot read compressed files)" in message


def test_folder_with_mixed_file_types(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "parts" / "a.jsonl", [SHAREGPT_RECORD])
    (tmp_path / "parts" / "b.csv").write_text("messages\n[]\n")
    [message] = messages(check(tmp_path, sharegpt_entry("parts")), "error")
    assert "folder mixes file types (a.jsonl (json), b.csv (csv))" in message


def test_folder_with_hidden_file(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "parts" / "a.jsonl", [SHAREGPT_RECORD])
    (tmp_path / "parts" / ".DS_Store").write_bytes(b"\0")
    [message] = messages(check(tmp_path, sharegpt_entry("parts")), "error")
    assert "unsupported file type: .DS_Store" in message and "every file of a folder, hidden ones" in message


def test_folder_of_json_and_jsonl_is_one_type(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "parts" / "a.jsonl", [SHAREGPT_RECORD])
    (tmp_path / "parts" / "b.json").write_text(json.dumps([SHAREGPT_RECORD]))
    problems = check(tmp_path, sharegpt_entry("parts"))
    assert messages(problems, "info") == ["ok: checked the first 2 records of parts"]


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    assert messages(check(tmp_path, sharegpt_entry("parts")), "error") == [
        f"file_name 'parts': folder {tmp_path / 'parts'} is empty"
    ]


def test_arrow_is_not_inspected(tmp_path: Path) -> None:
    (tmp_path / "d.arrow").write_bytes(b"")
    assert messages(check(tmp_path, sharegpt_entry("d.arrow")), "info") == ["d.arrow: arrow data not inspected"]


def test_empty_data_file(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("")
    assert messages(check(tmp_path, sharegpt_entry("d.jsonl")), "error") == [
        f"{tmp_path / 'd.jsonl'}: file is empty (no records)"
    ]


# --- the data ------------------------------------------------------------------------------------------------


def test_column_absent_from_data(tmp_path: Path) -> None:
    entry = {"file_name": "d.jsonl", "columns": {"prompt": "question", "response": "answer"}}
    problems = check(tmp_path, entry, {"d.jsonl": [{"question": "2+2?", "response": "4"}]})
    assert messages(problems, "error") == [
        "column 'answer' (response) is not in the first 1 record of d.jsonl; columns present: question, response"
    ]


def test_default_column_absent_from_data(tmp_path: Path) -> None:
    entry = {"file_name": "d.jsonl", "formatting": "sharegpt", "tags": dict(SHAREGPT_TAGS)}  # no columns block
    problems = check(tmp_path, entry, {"d.jsonl": [SHAREGPT_RECORD]})
    assert messages(problems, "error") == [
        "column 'conversations' (messages, LLaMA-Factory's default) is not in the first 1 record of d.jsonl; "
        "columns present: messages, system"
    ]


def test_text_file_has_one_column(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text("some text\n")
    problems = check(tmp_path, {"file_name": "corpus.txt", "columns": {"prompt": "content"}})
    assert messages(problems, "error") == ["column 'content' (prompt) is not in corpus.txt; columns present: text"]


def test_openai_missing_system_column_is_a_warning(tmp_path: Path) -> None:
    entry = {**sharegpt_entry("d.jsonl"), "formatting": "openai"}
    problems = check(tmp_path, entry, {"d.jsonl": [{"messages": SHAREGPT_RECORD["messages"]}]})
    assert messages(problems, "error") == []
    assert "column 'system' (system) is not in the first 1 record of d.jsonl; columns present: messages" in messages(
        problems, "warning"
    )


def test_role_values_matching_no_tag(tmp_path: Path) -> None:
    records = [SHAREGPT_RECORD, {"system": "", "messages": chat(("human", "hi"), ("assistant", "hello"))}]
    problems = check(tmp_path, sharegpt_entry("d.jsonl"), {"d.jsonl": records})
    [message] = messages(problems, "error")
    assert message.startswith(f"role value 'human' (first at {tmp_path / 'd.jsonl'}:2) matches none of the tags")
    assert "user_tag='user'" in message and "skips every such example" in message


def test_messages_not_a_list(tmp_path: Path) -> None:
    problems = check(tmp_path, sharegpt_entry("d.jsonl"), {"d.jsonl": [{"system": "", "messages": "hi"}]})
    assert messages(problems, "error") == [
        f"column 'messages' at {tmp_path / 'd.jsonl'}:1 is not a list of message objects"
    ]


@pytest.mark.parametrize(
    "response",
    [
        "<think>Add them.</think>4",
        "<think>\nAdd them.\n</think>\n4",
        "Add them.\n</think>\n\n4",
        "<|begin_of_thought|>Add them.<|end_of_thought|>4",
        "<reasoning>Add them.</reasoning>4",
        "4 <think>\nAdd them.\n</think>\n\n",
        "<think>\nAdd them.\n</think>\n\n<think>\nagain\n</think>\n\n4",
    ],
)
def test_unrecognised_thought_markup(tmp_path: Path, response: str) -> None:
    records = [SHAREGPT_RECORD, {"system": "", "messages": chat(("user", "2+2?"), ("assistant", response))}]
    problems = check(tmp_path, sharegpt_entry("d.jsonl"), {"d.jsonl": records})
    [message] = messages(problems, "warning")
    assert message.startswith(
        "1 assistant response(s) in the first 2 records of d.jsonl have thought markup "
        f"LLaMA-Factory will not recognise, first at {tmp_path / 'd.jsonl'}:2"
    )
    assert "lf-reasoning convert" in message


@pytest.mark.parametrize("response", [THOUGHT, "<think>\n\n</think>\n\n4", "4", "Use <b>bold</b>."])
def test_recognised_thought_markup(tmp_path: Path, response: str) -> None:
    record = {**ALPACA_RECORD, "output": response, "history": [["1+1?", THOUGHT]]}
    assert messages(check(tmp_path, alpaca_entry("d.jsonl"), {"d.jsonl": [record]}), "warning") == []


def test_thought_markup_in_alpaca_history(tmp_path: Path) -> None:
    record = {**ALPACA_RECORD, "history": [["1+1?", "<think>one and one</think>2"]]}
    [message] = messages(check(tmp_path, alpaca_entry("d.jsonl"), {"d.jsonl": [record]}), "warning")
    assert "'<think>one and one</think>2'" in message


def test_invalid_records(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [SHAREGPT_RECORD])
    path.write_text(path.read_text() + '{"messages": [\n[1, 2]\n')
    problems = check(tmp_path, sharegpt_entry("d.jsonl"))
    [message] = messages(problems, "error")
    assert message.startswith(f"2 invalid record(s) in the first 3 records of d.jsonl, first at {path}:2: invalid JSON")


# --- the report ----------------------------------------------------------------------------------------------


def test_format_problems_groups_by_entry() -> None:
    report = format_problems(
        [
            Problem("error", None, "no entry 'x'"),
            Problem("error", "a", "first"),
            Problem("warning", "b", "second"),
            Problem("error", "a", "third"),
            Problem("info", "c", "remote: not checked (hf_hub_url: o/n)"),
        ]
    )
    assert report == (
        "dataset_info.json\n  error: no entry 'x'\n"
        "a\n  error: first\n  error: third\n"
        "b\n  warning: second\n"
        "c\n  info: remote: not checked (hf_hub_url: o/n)\n"
        "3 errors, 1 warning, 1 remote entry not checked"
    )


# --- LLaMA-Factory's own registry ----------------------------------------------------------------------------

# Real issues in LLaMA-Factory 0.9.5's registry: ranking entries without chosen/rejected columns, on which its
# alpaca converter raises KeyError: None for the first example.
LF_BROKEN = {"nectar_rm", "orca_dpo_de"}


def test_llamafactory_registry(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "llamafactory_dataset_info.json", tmp_path / "dataset_info.json")
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    problems = validate_dataset_info(tmp_path)

    assert not [p for p in problems if "unknown key" in p.message or p.entry is None]
    for name, entry in info.items():
        mine = [p for p in problems if p.entry == name]
        errors = [p.message for p in mine if p.severity == "error"]
        if "file_name" in entry:  # LLaMA-Factory's demo files are not shipped here
            assert errors == [f"file_name '{entry['file_name']}': {tmp_path / entry['file_name']} not found"]
        else:
            hub = "hf_hub_url" if "hf_hub_url" in entry else "ms_hub_url"
            assert [p.message for p in mine if p.severity == "info"] == [f"remote: not checked ({hub}: {entry[hub]})"]
            if name in LF_BROKEN:
                assert [m.split(":")[0] for m in errors] == [
                    "ranking is true but there is no columns block, so no 'chosen'",
                    "ranking is true but there is no columns block, so no 'rejected'",
                ]
            else:
                assert errors == [], name
    # warnings are the two documented hazards only: pre-training corpora and sharegpt tags without the
    # observation/function/system tags (LLaMA-Factory's own README shows that shape)
    for p in problems:
        if p.severity == "warning":
            assert "omits 'response'" in p.message or p.message.startswith("the tags block omits"), p
    local = sum("file_name" in entry for entry in info.values())
    assert format_problems(problems).endswith(
        f"{local + len(LF_BROKEN) * 2} errors, 32 warnings, {len(info) - local} remote entries not checked"
    )
