"""Every SQL statement on a warehouse table lives in liq_pipeline/warehouse/, beside the table's DDL.

An AST walk over the package outside warehouse/: every string (f-strings with their `{…}` parts kept as
text; docstrings left out) that reads as SQL must neither name a warehouse table (the names come from
warehouse/schema.py) nor take the table it reads or writes from a `{…}` placeholder, unless that placeholder
is listed in NOT_WAREHOUSE with the reason it is not a warehouse table.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from liq_pipeline.warehouse.schema import TABLES
from liq_pipeline_tests.support.source_ast import parse_file

PACKAGE = Path(__file__).resolve().parents[2] / "liq_pipeline"

#: A statement, in any letter case: SELECT … FROM, INSERT INTO, DELETE FROM, UPDATE … SET, CREATE/ALTER/DROP
#: TABLE or VIEW, COPY.
SQL = re.compile(r"(?is)\bselect\b.*\bfrom\b|\binsert\s+into\b|\bdelete\s+from\b|\bupdate\s+\S+\s+set\b"
                 r"|\bcreate\s+(or\s+replace\s+)?(temp\s+|temporary\s+)?(table|view|schema)\b"
                 r"|\b(alter|drop)\s+(table|view)\b|\bcopy\s+\S+\s+(from|to)\b")
#: A placeholder where a statement names the relation it reads or writes.
PLACEHOLDER_TARGET = re.compile(r"(?i)\b(from|join|into|update|table|using)\s+\{([^{}]+)\}")

#: (module under liq_pipeline/, placeholder pattern) → why the relation it names is not a warehouse table.
NOT_WAREHOUSE = {
    ("market/parsers.py", r"read_csv_sql\("):
        "an archive CSV read in place by DuckDB's read_csv (a file, not a table)",
    ("market/identity.py", r"parsers\.read_csv_sql\("):
        "an archive CSV read in place to check its symbol, day and grid before anything is stored",
    ("market/identity.py", r"rel"):
        "the parsed file as a relation of a private in-memory DuckDB (`mem`), before it is stored",
    ("pipeline/raw_checks.py", r"parsers\.read_csv_sql\("):
        "an archive CSV read in place by the blocking checks before a write",
    ("pipeline/raw_checks.py", r"rel"):
        "the parsed file as a relation of a private in-memory DuckDB (`mem`), before it is stored",
    ("market/ingest.py", r"PARSED"):
        "the parsed file's rows registered as a frame; replace_partition (warehouse/io.py) writes them",
}


def warehouse_tables() -> tuple[str, ...]:
    return tuple(TABLES)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string of the module but docstrings and the pieces of an f-string (the
    f-string itself is given whole, each placeholder as `{expression}`)."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            out.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value)
                                             + "}" for v in node.values)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def misplaced_sql(package: Path = PACKAGE, tables: tuple[str, ...] | None = None,
                  allowed: dict[tuple[str, str], str] | None = None) -> tuple[list[str], set[tuple[str, str]]]:
    """(SQL strings outside warehouse/ that touch a warehouse table or an unexplained placeholder relation,
    the NOT_WAREHOUSE entries that matched something)."""
    tables = warehouse_tables() if tables is None else tables
    allowed = NOT_WAREHOUSE if allowed is None else allowed
    named = re.compile(r"(?<![\w.])(" + "|".join(re.escape(t) for t in tables) + r")(?![\w])")
    bad, used = [], set()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.startswith("warehouse/"):
            continue
        for line, text in _strings(parse_file(path)):
            if not SQL.search(text):
                continue
            where = f"{package.name}/{rel}:{line}"
            bad += [f"{where} names warehouse table {m.group(1)}" for m in named.finditer(text)]
            for m in PLACEHOLDER_TARGET.finditer(text):
                keys = [k for k in allowed if k[0] == rel and re.fullmatch(k[1] + r".*", m.group(2).strip())]
                used.update(keys)
                if not keys:
                    bad.append(f"{where} reads or writes the relation {{{m.group(2)}}}: move the statement to "
                               "warehouse/, or list it in NOT_WAREHOUSE with the reason it is no warehouse table")
    return bad, used


def test_the_table_names_come_from_the_schema():
    names = warehouse_tables()
    assert len(names) >= 20 and all(re.fullmatch(r"(raw|truth|model)\.\w+", n) for n in names)
    assert {"raw.agg_trades", "model.liquidation_heatmap", "truth.positions"} <= set(names)


def test_no_sql_on_a_warehouse_table_outside_warehouse():
    bad, _ = misplaced_sql()
    assert bad == []


def test_every_exception_is_still_needed():
    _, used = misplaced_sql()
    assert set(NOT_WAREHOUSE) - used == set(), "NOT_WAREHOUSE entries that match nothing any more: remove them"


@pytest.mark.parametrize("module, found", [
    ('con.execute("SELECT count(*) FROM raw.klines WHERE symbol = ?", [s])', ["names warehouse table raw.klines"]),
    ('con.execute("select * from model.liquidation_heatmap")', ["names warehouse table model.liquidation_heatmap"]),
    ('con.execute(f"INSERT INTO {TABLE} BY NAME SELECT * FROM _batch")', ["reads or writes the relation {TABLE}"]),
    ('con.execute(f"""SELECT open_time FROM {table}\n WHERE day = ?""", [d])', ["reads or writes the relation {table}"]),
    ('con.execute(f"DELETE FROM truth.positions WHERE day = {d!r}")', ["names warehouse table truth.positions"]),
    # not SQL on a warehouse table: a docstring, a table name alone, a frame, a CSV read in place
    ('def f():\n    """SELECT rows FROM raw.klines: what the reader returns."""', []),
    ('TABLE = "raw.klines"\nwrite(con, TABLE, rows)', []),
    ('mem.execute("SELECT * FROM candles JOIN bars USING (t)")', []),
    ('mem.execute(f"SELECT * FROM {read_csv_sql(path)}")', []),
    ('con.execute("SELECT * FROM raw.klines_backup")', []),  # not one of the schema's tables
])
def test_the_walk_catches_sql_on_a_warehouse_table(tmp_path, module, found):
    package = tmp_path / "liq_pipeline"
    (package / "cli").mkdir(parents=True)
    (package / "warehouse").mkdir()
    (package / "cli" / "a.py").write_text(module)
    (package / "warehouse" / "b.py").write_text('con.execute("SELECT * FROM raw.klines")')  # its own room
    bad, _ = misplaced_sql(package, ("raw.klines", "model.liquidation_heatmap", "truth.positions"),
                           {("cli/a.py", r"read_csv_sql\("): "a CSV"})
    assert [b.split(" ", 1)[1].split(": move")[0] for b in bad] == found
    assert all(b.startswith("liq_pipeline/cli/a.py:") for b in bad)
