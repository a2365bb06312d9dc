"""The mutation score's own machinery (mutations/run.py), without running the product's
mutations: the list is valid and long enough, a list that rotted is refused, and the runner's
verdict can fail — a mutation the tests do not exercise SURVIVES, in a tiny repository."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mutations import run
from tests.support.tools import require_program

REPO = Path(__file__).resolve().parent.parent
MIN_MUTATIONS = 20


def test_every_mutation_of_the_list_applies_and_there_are_enough() -> None:
    mutations, problems = run.load_mutations(REPO / "mutations" / "mutations.toml")
    problems += run.validate(mutations, REPO)
    assert problems == []
    counted = [m for m in mutations if m.pending is None]
    assert len(counted) >= MIN_MUTATIONS, [m.name for m in counted]
    assert len({m.file for m in counted}) >= 8, "spread over the critical modules"
    assert all(m.why and m.tests for m in mutations)


def test_the_check_command_validates_the_list() -> None:
    out = subprocess.run([sys.executable, str(REPO / "mutations" / "run.py"), "--check"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every one valid" in out.stdout


# --------------------------------------------------------------------------- a tiny repository

CALC = '''\
def add(a: int, b: int) -> int:
    return a + b


def greeting() -> str:
    return "hello"
'''

TEST_CALC = '''\
from cfcr.calc import add


def test_add() -> None:
    assert add(2, 3) == 5
'''

LIST = '''\
[[mutation]]
name = "add-subtracts"
file = "cfcr/calc.py"
find = "return a + b"
replace = "return a - b"
why = "add subtracts"
tests = ["tests/test_calc.py"]

[[mutation]]
name = "greeting-changed"
file = "cfcr/calc.py"
find = 'return "hello"'
replace = 'return "goodbye"'
why = "no test reads the greeting, so nothing can catch this"
tests = ["tests/test_calc.py"]
'''


def tiny_repository(root: Path, mutations: str = LIST) -> Path:
    """A git repository with a package named like the product's (so the copy must win over the
    editable install of the real one), one test, and a mutation list; nothing committed."""
    require_program("git")
    files = {"pytest.ini": "[pytest]\n", "cfcr/__init__.py": "", "cfcr/calc.py": CALC,
             "tests/test_calc.py": TEST_CALC, "mutations/mutations.toml": mutations}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_a_mutation_the_tests_do_not_exercise_survives_and_fails_the_run(tmp_path: Path) -> None:
    repo = tiny_repository(tmp_path / "tiny")
    lines: list[str] = []
    status = run.main(["--repo", str(repo)], say=lines.append)
    output = "\n".join(lines)
    assert status == 1, output
    verdicts = {m.group(2): m.group(1) for m in map(re.compile(r"^\[\s*\d+/\d+\] (\S+) +(\S+)").match, lines) if m}
    assert verdicts == {"add-subtracts": run.CAUGHT, "greeting-changed": run.SURVIVED}, output
    assert "tests/test_calc.py::test_add" in output
    assert "not caught: greeting-changed (SURVIVED)" in output
    assert (repo / "cfcr" / "calc.py").read_text() == CALC, "the repository itself is never touched"


def test_a_pending_mutation_reports_but_does_not_fail_the_run(tmp_path: Path) -> None:
    pending = LIST.replace('tests = ["tests/test_calc.py"]\n', 'tests = ["tests/test_calc.py"]\npending = "later"\n')
    repo = tiny_repository(tmp_path / "tiny", pending)
    lines: list[str] = []
    assert run.main(["--repo", str(repo), "--no-baseline"], say=lines.append) == 0, "\n".join(lines)
    assert any("SURVIVED greeting-changed" in line and "[pending: later]" in line for line in lines)


def test_tests_that_fail_unmutated_catch_nothing(tmp_path: Path) -> None:
    repo = tiny_repository(tmp_path / "tiny", LIST.split("\n\n")[0] + "\n")
    (repo / "tests" / "test_calc.py").write_text(TEST_CALC.replace("== 5", "== 6"))
    lines: list[str] = []
    assert run.main(["--repo", str(repo)], say=lines.append) == 1
    assert any("ERROR" in line and "its tests fail unmutated" in line for line in lines), "\n".join(lines)


@pytest.mark.parametrize(("find", "problem"), [
    ("return a * b", "the find text is missing"),
    ("return", "the find text is ambiguous (2 occurrences)"),
])
def test_a_list_that_rotted_is_refused(tmp_path: Path, find: str, problem: str) -> None:
    repo = tiny_repository(tmp_path / "tiny", LIST.replace('find = "return a + b"', f'find = "{find}"'))
    lines: list[str] = []
    assert run.main(["--repo", str(repo), "--check"], say=lines.append) == 1
    assert problem in "\n".join(lines)


@pytest.mark.parametrize(("entry", "problem"), [
    ('name = "x"\nfile = "cfcr/calc.py"\nfind = "a"\nreplace = "b"\nwhy = "w"\n', "missing ['tests']"),
    ('name = "Bad Name"\nfile = "cfcr/calc.py"\nfind = "a"\nreplace = "b"\nwhy = "w"\ntests = ["t"]\n', "kebab-case"),
    ('name = "x"\nfile = "cfcr/calc.py"\nfind = "a"\nreplace = "b"\nwhy = "w"\ntests = []\n', "non-empty list"),
    ('name = "x"\nfile = "cfcr/calc.py"\nfind = "a"\nreplace = "b"\nwhy = "w"\ntests = ["t"]\nowner = "me"\n',
     "unknown ['owner']"),
])
def test_malformed_entries_are_named(tmp_path: Path, entry: str, problem: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[[mutation]]\n" + entry)
    mutations, problems = run.load_mutations(path)
    assert mutations == [] and len(problems) == 1 and problem in problems[0], problems


def test_only_product_files_may_be_mutated_and_tests_must_exist(tmp_path: Path) -> None:
    repo = tiny_repository(tmp_path / "tiny")
    mutation = run.Mutation("m", "tests/test_calc.py", "add(2, 3)", "add(3, 2)", "w", ("tests/missing.py",))
    problems = run.validate([mutation], repo)
    assert len(problems) == 1 and "not a product file" in problems[0]
    mutation = run.Mutation("m", "cfcr/calc.py", "a + b", "a - b", "w", ("tests/missing.py::test_x",))
    assert run.validate([mutation], repo) == ["m: test 'tests/missing.py::test_x': no such file tests/missing.py"]


def test_the_first_failing_node_id_is_read_from_pytests_summary() -> None:
    output = textwrap.dedent("""\
        ..F
        =========================== short test summary info ============================
        FAILED tests/test_node_cis.py::test_cis[4.2.4 kubelet readOnlyPort 0] - AssertionError: x - y
        FAILED tests/test_other.py::test_b - assert 1 == 2
        1 failed, 2 passed in 0.1s
        """)
    assert run.first_failure(output) == "tests/test_node_cis.py::test_cis[4.2.4 kubelet readOnlyPort 0]"
    assert run.first_failure("ERROR tests/test_x.py - ImportError: no module\n") == "tests/test_x.py"
    assert run.first_failure("3 passed in 0.1s\n") is None


def test_only_a_failed_test_of_the_selection_catches() -> None:
    """An import error (exit 2), a broken fixture (ERROR) or a failure outside the mutation's
    tests is no verdict on the mutation: ERROR, never CAUGHT."""
    m = run.Mutation(name="m", file="cfcr/x.py", find="a", replace="b", why="w", tests=("tests/test_x.py",))
    failed = "FAILED tests/test_x.py::test_one[a b] - AssertionError\n1 failed in 0.1s\n"
    assert run.judge(m, run.PytestRun(1, failed, 0.1)).verdict == run.CAUGHT
    assert run.judge(m, run.PytestRun(2, "ERROR tests/test_x.py - ImportError: no module\n", 0.1)).verdict == run.ERROR
    assert run.judge(m, run.PytestRun(1, "ERROR tests/test_x.py::test_one - fixture broke\n", 0.1)).verdict == run.ERROR
    outside = run.judge(m, run.PytestRun(1, "FAILED tests/test_y.py::test_two - AssertionError\n", 0.1))
    assert outside.verdict == run.ERROR and "outside its selection" in outside.caught_by
    assert run.judge(m, run.PytestRun(0, "1 passed\n", 0.1)).verdict == run.SURVIVED
