"""Check that the code in the user guide and the README is real.

Every fenced ``python`` block in ``docs/*.md`` and ``README.md`` must compile. Blocks that
define a DAG (they contain ``DAG(`` or ``@dag``) are written to a temporary DAGs folder and
loaded with Airflow's ``DagBag``: a wrong import, class or operator argument is an import error
there. Every other block is executed, unless an HTML comment ``<!-- skip-run -->`` on the line
before it says it needs running services or names defined elsewhere; those still compile.
A block that runs a DAG with ``run_dag(`` is a DAG test, not a DAG file: it is executed with
Airflow's metadata database migrated. The test functions an executed block defines that take
no arguments (``def test_...():``) are called, as pytest would.
``json`` blocks must parse, and relative links must point at files (and headings) that exist.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [*sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "README.md"]
SKIP_RUN_MARKER = "<!-- skip-run -->"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    source: str
    skip_run: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"

    @property
    def is_dag_test(self) -> bool:
        return "run_dag(" in self.source

    @property
    def is_dag(self) -> bool:
        return ("DAG(" in self.source or "@dag" in self.source) and not self.is_dag_test


def extract_blocks(path: Path, text: str | None = None) -> list[CodeBlock]:
    """Return the fenced code blocks of a Markdown file, in order.

    :param path: the file, used for ids and for reading when ``text`` is not given.
    :param text: the Markdown text, to parse a string instead of the file.
    """
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        start, indent = i, opening["indent"]
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        previous = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        # Blocks inside list items are indented; dedent so they compile as written.
        source = textwrap.dedent("\n".join(body)) if indent else "\n".join(body)
        blocks.append(
            CodeBlock(path, start + 1, opening["lang"].lower(), source + "\n", previous == SKIP_RUN_MARKER)
        )
        i += 1
    return blocks


def _all_blocks(lang: str) -> list[CodeBlock]:
    return [
        block for path in DOC_FILES if path.exists() for block in extract_blocks(path) if block.lang == lang
    ]


PYTHON_BLOCKS = _all_blocks("python")
JSON_BLOCKS = _all_blocks("json")
DAG_BLOCKS = [block for block in PYTHON_BLOCKS if block.is_dag]
RUN_BLOCKS = [block for block in PYTHON_BLOCKS if not block.is_dag and not block.skip_run]


def load_dag_files(sources: dict[str, str], folder: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Write DAG files to ``folder`` and parse them the way Airflow's DAG processor does.

    :param sources: file name (without ``.py``) to Python source.
    :param folder: an empty directory to use as the DAGs folder.
    :return: the import errors by file name, and the DAG ids found by file name.
    """
    from airflow.dag_processing.dagbag import DagBag

    for name, source in sources.items():
        (folder / f"{name}.py").write_text(source, encoding="utf-8")
    # safe_mode=False: parse every file, not only those that mention "airflow" and "dag".
    bag = DagBag(dag_folder=folder, safe_mode=False)
    errors = {Path(file).stem: message for file, message in bag.import_errors.items()}
    dag_ids: dict[str, list[str]] = {name: [] for name in sources}
    for dag in bag.dags.values():
        dag_ids.setdefault(Path(dag.fileloc).stem, []).append(dag.dag_id)
    return errors, dag_ids


def _module_name(block: CodeBlock) -> str:
    return re.sub(r"\W", "_", block.id)


@pytest.fixture(scope="module")
def loaded_dags(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Load every DAG sample of the docs in one ``DagBag`` (one parse for all of them)."""
    folder = tmp_path_factory.mktemp("doc_dags")
    return load_dag_files({_module_name(block): block.source for block in DAG_BLOCKS}, folder)


@pytest.fixture
def restored_environ() -> Iterator[None]:
    """Undo environment changes a sample makes (``AIRFLOW_CONN_...`` for its simulator)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_docs_have_samples() -> None:
    # Guards the extraction itself: a broken fence regex would make every other test vacuous.
    assert (REPO_ROOT / "docs" / "index.md").exists()
    assert len(PYTHON_BLOCKS) >= 10
    assert len(DAG_BLOCKS) >= 3
    assert len(RUN_BLOCKS) >= 5
    assert any(block.is_dag_test for block in RUN_BLOCKS)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_sample_compiles(block: CodeBlock) -> None:
    compile(block.source, block.id, "exec")


@pytest.mark.parametrize("block", DAG_BLOCKS, ids=lambda b: b.id)
def test_dag_sample_loads_without_import_errors(
    block: CodeBlock, loaded_dags: tuple[dict[str, str], dict[str, list[str]]]
) -> None:
    errors, dag_ids = loaded_dags
    name = _module_name(block)
    assert name not in errors, f"{block.id} does not load as a DAG file:\n{errors.get(name)}"
    assert dag_ids.get(name), f"{block.id} defines no DAG"


def run_block(block: CodeBlock) -> list[str]:
    """Execute ``block``, then call each test function it defines that takes no arguments.

    :return: the names of the test functions called.
    """
    namespace: dict[str, object] = {"__name__": _module_name(block)}
    exec(compile(block.source, block.id, "exec"), namespace)
    called = []
    for name, value in list(namespace.items()):
        if not (name.startswith("test_") and inspect.isfunction(value)):
            continue
        # A test taking arguments wants pytest fixtures: it is compiled, not called.
        if all(p.default is not p.empty for p in inspect.signature(value).parameters.values()):
            value()
            called.append(name)
    return called


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=lambda b: b.id)
def test_python_sample_runs(block: CodeBlock, restored_environ: None, request: pytest.FixtureRequest) -> None:
    if block.is_dag_test:
        request.getfixturevalue("airflow_db")
    run_block(block)


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=lambda b: b.id)
def test_json_sample_parses(block: CodeBlock) -> None:
    json.loads(block.source)


def _slug(heading: str) -> str:
    """Return the anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # '#' in code is no heading
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, flags=re.M)}


@pytest.mark.parametrize("path", [p for p in DOC_FILES if p.exists()], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    broken = []
    for match in _LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z]+:", target):
            continue  # an absolute URL
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{path.name}: broken links: {broken}"


def test_readme_links_the_user_guide() -> None:
    assert "docs/index.md" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_quick_start_comes_first() -> None:
    # The README's first commands are the two that set everything up on a fresh machine.
    readme = REPO_ROOT / "README.md"
    first = extract_blocks(readme)[0]
    assert first.lang == "bash"
    assert [line.split()[:2] for line in first.source.splitlines() if line.strip()] == [
        ["make", "demo"],
        ["make", "test"],
    ]


# The checks above must be able to fail: feed them samples that are wrong on purpose.


def test_a_wrong_operator_argument_is_an_import_error(tmp_path: Path) -> None:
    good = _first_operator_dag()
    bad = good.replace("task_id=", "no_such_argument=1, task_id=", 1)
    errors, dag_ids = load_dag_files({"good": good, "bad": bad}, tmp_path)
    assert "good" not in errors and dag_ids["good"]
    assert "no_such_argument" in errors["bad"]


def test_a_wrong_class_name_is_an_import_error(tmp_path: Path) -> None:
    source = _first_operator_dag()
    bad = re.sub(r"\bIterable(\w+)Operator\b", r"IterableNoSuch\1Operator", source)
    errors, _ = load_dag_files({"bad": bad}, tmp_path)
    assert "ImportError" in errors["bad"] or "NameError" in errors["bad"]


def test_skip_run_marker_and_indented_blocks_are_parsed() -> None:
    text = (
        "Intro\n\n<!-- skip-run -->\n```python\nsim.stop()\n```\n\n"
        "1. Step\n\n   ```python\n   x = 1\n   ```\n"
    )
    skipped, indented = extract_blocks(REPO_ROOT / "README.md", text)
    assert skipped.skip_run and skipped.source == "sim.stop()\n"
    assert not indented.skip_run and indented.source == "x = 1\n"


def test_a_failing_sample_test_function_fails() -> None:
    text = "```python\ndef test_it():\n    assert 1 == 2\n\ndef test_fixture(sim):\n    pass\n```\n"
    (block,) = extract_blocks(REPO_ROOT / "README.md", text)
    with pytest.raises(AssertionError):
        run_block(block)


def test_a_dag_test_sample_is_run_not_parsed() -> None:
    text = "```python\nwith DAG('x') as dag: pass\nrun_dag(dag)\n```\n"
    (block,) = extract_blocks(REPO_ROOT / "README.md", text)
    assert block.is_dag_test and not block.is_dag


def _first_operator_dag() -> str:
    for block in DAG_BLOCKS:
        if "Operator(" in block.source and "task_id=" in block.source:
            return block.source
    pytest.fail("the docs hold no DAG sample with an operator")
