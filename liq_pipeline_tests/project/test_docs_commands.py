"""Every command the README and docs/ show still exists, and every link between the pages resolves.

Each line of a ```bash block is split into pipeline stages; a stage is checked without running anything
heavy: `liq <sub>` and `dagster <sub>` must answer `--help` (exit 0) and list every `--option` the line
uses, `make <target>` must be a target of the Makefile, `.venv/bin/python -m M` / `-c CODE` must find M /
compile CODE, anything else must be a program on the PATH. ```text blocks (shown output, `$ ` prompts)
are not commands.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = {"|", "||", "&&", ";", "&", "|&"}
_PREFIX_KEYWORDS = {"do", "then", "else", "elif", "while", "until", "if", "!", "time"}
_HEADER_KEYWORDS = {"for", "case", "select"}  # `for NAME in WORDS`: no command in the header
_CLOSERS = {"done", "fi", "esac", "{", "}"}
_BUILTINS = {"cd", "export", "echo", "set", "unset", "true", "false"}
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*(\S*)")


@dataclass(frozen=True)
class Stage:
    """One simple command of a documented line: where it is shown and its words, assignments stripped."""
    where: str
    words: tuple[str, ...]


def bash_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the block's first line, its lines) of every ```bash / ```sh / ```shell block."""
    blocks, current, start, fence = [], None, 0, None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                if match.group(2).lower() in ("bash", "sh", "shell", "console-bash"):
                    current, start = [], number + 1
        elif match and match.group(1).startswith(fence) and not match.group(2):
            if current is not None:
                blocks.append((start, current))
            current, fence = None, None
        elif current is not None:
            current.append(line)
    return blocks


def _logical_lines(start: int, lines: list[str]) -> Iterable[tuple[int, str]]:
    """Lines joined over trailing backslashes, with the number of their first physical line."""
    pending, first = "", start
    for offset, line in enumerate(lines):
        if not pending:
            first = start + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""
    if pending:
        yield first, pending


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # `#` starts a comment only at the start of a word (not in `${run#*:}`)
    words = []
    for word in lexer:
        if word.startswith("#"):
            break
        words.append(word)
    return words


def stages(text: str, name: str = "<text>") -> list[Stage]:
    """Every simple command of the bash blocks of a markdown text, in order."""
    found = []
    for start, lines in bash_blocks(text):
        for number, line in _logical_lines(start, lines):
            group: list[str] = []
            for word in [*_words(line), ";"]:
                if word not in _SEPARATORS:
                    group.append(word)
                    continue
                while group and group[0] in _PREFIX_KEYWORDS:
                    group.pop(0)
                while group and _ASSIGNMENT.match(group[0]):
                    group.pop(0)
                if group and group[0] not in _HEADER_KEYWORDS and group[0] not in _CLOSERS:
                    found.append(Stage(f"{name}:{number}", tuple(group)))
                group = []
    return found


def makefile_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    """Targets named in the Makefile's rules and .PHONY lines (a static parse: nothing is run)."""
    targets = set()
    for line in makefile.read_text().splitlines():
        if line.startswith(("\t", "#")) or ":" not in line:
            continue
        head, _, rest = line.partition(":")
        if rest.startswith("=") or "=" in head:  # `X := …`, `X ?= …` assignments
            continue
        names = rest.split() if head.strip() == ".PHONY" else head.split()
        targets.update(n for n in names if "$" not in n and "/" not in n)
    return targets


def _help_key(words: tuple[str, ...]) -> tuple[str, ...]:
    """The program and sub-command path whose --help documents a line: `liq heatmap`, `dagster asset materialize`."""
    program = "liq" if Path(words[0]).name == "liq" else "dagster"
    depth = 1 if program == "liq" else 2
    path = []
    for word in words[1:]:
        if word.startswith("-") or not re.fullmatch(r"[a-z][a-z0-9-]*", word) or len(path) == depth:
            break
        path.append(word)
    return (program, *path)


def _run_help(key: tuple[str, ...]) -> tuple[int, str]:
    program = BIN / key[0]
    if not program.exists():
        return 127, f"{program} is not installed (pip install -e .)"
    done = subprocess.run([str(program), *key[1:], "--help"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    return done.returncode, done.stdout + done.stderr


def _options(words: tuple[str, ...]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if w.startswith("--") and len(w) > 2]


def problems(found: list[Stage], targets: set[str] | None = None) -> list[str]:
    """What is wrong with documented commands: one line per stage that names a missing command or option."""
    targets = makefile_targets() if targets is None else targets
    helped = [s for s in found if Path(s.words[0]).name in ("liq", "dagster")]
    keys = sorted({_help_key(s.words) for s in helped})
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = dict(zip(keys, pool.map(_run_help, keys), strict=True))
    out = []
    for stage in found:
        first, shown = stage.words[0], " ".join(stage.words)
        if first.startswith(".venv/bin/"):
            tool = BIN / first.removeprefix(".venv/bin/")
            if not tool.exists():
                out.append(f"{stage.where}: `{shown}`: {tool.name} is not in the venv")
                continue
            first = tool.name
        if first in ("liq", "dagster"):
            key = _help_key(stage.words)
            code, text = answers[key]
            if code != 0:
                out.append(f"{stage.where}: `{shown}`: `{' '.join(key)} --help` exited {code}: "
                           f"{text.strip().splitlines()[-1] if text.strip() else ''}")
                continue
            for option in _options(stage.words):
                if not re.search(re.escape(option) + r"(?![\w-])", text):
                    out.append(f"{stage.where}: `{shown}`: `{' '.join(key)}` has no option {option}")
        elif first == "make":
            for target in stage.words[1:]:
                if not target.startswith("-") and "=" not in target and target not in targets:
                    out.append(f"{stage.where}: `{shown}`: no target `{target}` in the Makefile")
        elif first in ("source", "."):
            sourced = stage.words[1] if len(stage.words) > 1 else ""
            if sourced != ".venv/bin/activate" and not (ROOT / sourced).is_file():
                out.append(f"{stage.where}: `{shown}`: no file {sourced}")
        elif first.startswith("python"):
            out.extend(f"{stage.where}: `{shown}`: {p}" for p in _python_problems(stage.words))
        elif first not in _BUILTINS and shutil.which(first) is None:
            out.append(f"{stage.where}: `{shown}`: `{first}` is not a command on the PATH")
    return out


def _python_problems(words: tuple[str, ...]) -> list[str]:
    if "-m" in words[:-1]:
        module = words[words.index("-m") + 1]
        if importlib.util.find_spec(module) is None:
            return [f"no module {module}"]
    if "-c" in words[:-1]:
        try:
            compile(words[words.index("-c") + 1], "<docs>", "exec")
        except SyntaxError as error:
            return [f"the -c code does not compile: {error}"]
    return []


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    found, seen, fence = set(), {}, False
    for line in text.splitlines():
        if _FENCE.match(line):
            fence = not fence
        elif not fence and (match := re.match(r"#{1,6} (.+)", line)):
            slug = _slug(match.group(1))
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def _links(text: str) -> Iterable[tuple[int, str]]:
    fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fence = not fence
        elif not fence:
            for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
                if not re.match(r"[a-z]+:", target):
                    yield number, target


# ---------------------------------------------------------------------------------------------------------

SAMPLE = """Intro.

```bash
FOO=1 liq heatmap BTCUSDT --format json | head -5   # a comment
liq no-such-command BTCUSDT
liq zones BTCUSDT --no-such-option 3
make demo && make no-such-target PAIRS="a b"
for s in A B; do
  LIQ_DATA_DIR=data/${s#*:} liq demo --seed 1
done
```

```text
$ liq not-a-command-either
```
"""


def test_the_extractor_reads_bash_blocks_only_and_splits_pipes_loops_and_assignments():
    found = [s.words for s in stages(SAMPLE)]
    assert found == [
        ("liq", "heatmap", "BTCUSDT", "--format", "json"), ("head", "-5"),
        ("liq", "no-such-command", "BTCUSDT"),
        ("liq", "zones", "BTCUSDT", "--no-such-option", "3"),
        ("make", "demo"), ("make", "no-such-target", "PAIRS=a b"),
        ("liq", "demo", "--seed", "1"),
    ]
    assert stages(SAMPLE, "x.md")[2].where == "x.md:5"


def test_an_unknown_sub_command_option_or_make_target_is_reported():
    found = problems(stages(SAMPLE, "x.md"), targets={"demo"})
    assert len(found) == 3, found
    assert found[0].startswith("x.md:5: `liq no-such-command BTCUSDT`: `liq no-such-command --help` exited 2")
    assert found[1] == "x.md:6: `liq zones BTCUSDT --no-such-option 3`: `liq zones` has no option --no-such-option"
    assert found[2].startswith("x.md:7: `make no-such-target PAIRS=a b`: no target `no-such-target`")


def test_every_command_the_readme_and_docs_show_exists():
    found = [stage for page in PAGES for stage in stages(page.read_text(), page.relative_to(ROOT).as_posix())]
    assert len(found) > 20  # the pages do show commands: an extractor that finds none must not pass
    assert problems(found) == []


def test_the_makefile_parse_finds_the_documented_targets():
    assert {"demo", "test", "ui", "bench", "score-real", "compare", "prod-local"} <= makefile_targets()


def test_every_relative_link_and_anchor_of_the_pages_resolves():
    broken = []
    for page in PAGES:
        text = page.read_text()
        for number, target in _links(text):
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT).as_posix()}:{number}: ({target})"
            if not linked.exists():
                broken.append(f"{where}: no file {path}")
            elif anchor and anchor not in anchors(linked.read_text()):
                broken.append(f"{where}: no heading #{anchor} in {linked.name}")
    assert broken == []


def test_the_readme_is_a_front_door_that_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines (at most 200: detail belongs in docs/)"
    assert any("docs/heatmap-demo.png" in line for line in lines[:40]), "the picture is not in the first 40 lines"
    linked = {target.partition("#")[0] for _, target in _links(readme)}
    assert [p.name for p in PAGES[1:] if f"docs/{p.name}" not in linked] == []
