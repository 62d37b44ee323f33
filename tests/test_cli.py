"""The CLI contract that scripts and acceptance checks rely on."""

import io
import json

import pytest
import yaml

from bot.cli import main
from bot.index import load_index
from paths import DEV_QUESTIONS, REPO

CITATION_KEYS = {"n", "document", "section", "refs", "url", "updated", "text", "score"}


@pytest.mark.integration
def test_ask_json_contract(real_settings, capsys):
    assert main(["ask", "Hva er aktivitetsplikten?", "--json", "--role", "staff"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"question", "answered", "answer", "kind", "citations", "suggested_flow", "role", "urgent",
                         "help", "see_also"}
    assert all(set(other) == {"section", "title"} for other in data["see_also"]) and len(data["see_also"]) <= 2
    assert data["kind"] in ("answer", "vague") and data["urgent"] is False and data["help"] == []
    assert data["answered"] is True and data["role"] == "staff" and data["citations"]
    for i, c in enumerate(data["citations"], start=1):
        assert set(c) == CITATION_KEYS and c["n"] == i and isinstance(c["score"], float)
        assert all(r.startswith(("§ ", "kommuneloven", "forvaltningsloven")) for r in c["refs"])


@pytest.mark.integration
def test_ask_batch_from_stdin_keeps_order(real_settings, capsys, monkeypatch):
    questions = ["Hva er tvangsmulkt?", "", "Når er høstferien?", "Gjelder aktivitetsplikten i SFO?"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(questions) + "\n"))
    assert main(["ask", "--json", "--batch", "-"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["question"] for r in lines] == ["Hva er tvangsmulkt?", "Når er høstferien?",
                                              "Gjelder aktivitetsplikten i SFO?"]
    assert [r["answered"] for r in lines] == [True, False, True]


@pytest.mark.integration
def test_ask_json_says_when_help_numbers_were_shown(real_settings, capsys):
    assert main(["ask", "jeg vil ikke leve mer", "--json", "--role", "pupil"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["urgent"] is True and data["kind"] == "urgent"
    assert {"number", "name"} == set(data["help"][0]) and "116 006" not in {h["number"] for h in data["help"]}


@pytest.mark.integration
def test_ask_text_output_lists_citations(real_settings, capsys):
    assert main(["ask", "Hvem kan melde en sak til Statsforvalteren?"]) == 0
    out = capsys.readouterr().out
    assert "[1]" in out and "§ 12-6" in out
    assert main(["ask", "skolen sier de ikke kan gjøre noe fordi det skjedde på fritida", "--json"]) == 0
    offered = json.loads(capsys.readouterr().out)["see_also"]
    assert main(["ask", "skolen sier de ikke kan gjøre noe fordi det skjedde på fritida"]) == 0
    out = capsys.readouterr().out
    assert offered and all(f"Se også: {other['title']}" in out for other in offered)


@pytest.mark.integration
def test_eval_prints_metrics_per_language(real_settings, capsys):
    assert main(["eval", str(DEV_QUESTIONS), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"hit@1", "hit@3", "mrr@10", "lead", "reach", "refusal_accuracy", "false_refusals"} <= set(report["overall"])
    # one tap away includes what the answer leads with
    assert report["overall"]["lead"] <= report["overall"]["reach"] <= 1.0
    assert {"nb", "nn", "en", "other"} <= set(report["groups"])  # languages, then audiences
    assert {"parent", "staff"} <= set(report["groups"])
    assert report["overall"]["questions"] == 40


def test_eval_can_leave_out_questions_the_knowledge_base_nearly_asks_itself(real_settings, capsys, tmp_path):
    items = [{"id": "same", "question": "Hva er aktivitetsplikten?", "expect_refs": ["§ 12-4"]},
             {"id": "other", "question": "Må læreren min si fra til rektor når jeg forteller at jeg blir plaget?",
              "expect_refs": ["§ 12-4"]}]
    own = next(q for record in load_index(real_settings.index_dir).sections for q in record.questions)
    items[0]["question"] = own  # word for word one of the sections' own questions
    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")
    assert main(["eval", str(path), "--json", "--unlike", "0.99"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["left_out_near_duplicates"]) == ["same"] and report["overall"]["questions"] == 1


def test_ask_without_index_says_run_kap12_index(capsys):
    assert main(["ask", "Hva er aktivitetsplikten?"]) == 1
    assert "kap12 index" in capsys.readouterr().err


def test_index_also_caches_the_safety_exemplars(capsys, tmp_path):
    assert main(["index", "--quiet"]) == 0
    assert "Index built" in capsys.readouterr().out
    assert list((tmp_path / "index" / "cache").glob("safety-exemplars-*.npz"))  # the first message need not wait


def test_bad_setting_stops_with_the_fix(monkeypatch, capsys):
    monkeypatch.setenv("KAP12_RRF_K", "zero")
    assert main(["sources"]) == 1
    err = capsys.readouterr().err
    assert "KAP12_RRF_K" in err and "Fix the value" in err


def test_python_m_bot_runs_the_same_cli():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "kap12" in result.stdout and "sources" in result.stdout


def test_run_without_token_builds_the_index_and_chats(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("sys.stdin", io.StringIO("/start\n1\n"))
    assert main(["run"]) == 0
    captured = capsys.readouterr()
    assert "Building the index" in captured.err
    assert "> 1" in captured.out  # the scripted choice was read from stdin
    assert (tmp_path / "index" / "current" / "manifest.json").exists()


def test_run_keeps_serving_the_old_index_when_knowledge_breaks(monkeypatch, capsys, tmp_path):
    import shutil

    from paths import KNOWLEDGE

    knowledge = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    monkeypatch.setenv("KAP12_KNOWLEDGE_DIR", str(knowledge))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["run"]) == 0
    (knowledge / "broken.md").write_text("---\ntitle: [\n---\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("/start\n"))
    assert main(["run"]) == 0
    captured = capsys.readouterr()
    assert "broken.md" in captured.err and "previous index keeps serving" in captured.err


@pytest.mark.integration
def test_flows_check_passes_against_the_real_index(real_settings, capsys):
    assert main(["flows", "check"]) == 0
    assert "7 flows" in capsys.readouterr().out
    assert main(["flows", "--mermaid", "statsforvalteren"]) == 0
    diagram = capsys.readouterr().out
    assert "flowchart" in diagram and "Melde saken til Statsforvalteren" in diagram
