import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edumine.cli import app
from edumine.errors import QueryError
from edumine.query import run_query

runner = CliRunner()


def test_posts_view_over_the_lake(default_lake: Path) -> None:
    columns, rows = run_query(default_lake, "select community, kind, count(*) n from posts "
                                            "where platform = 'reddit' group by all order by n desc")
    assert columns == ["community", "kind", "n"]
    assert rows[0] == ("teaching", "post", 3518 + 1000 + 260 + 1911)
    _, quarantine = run_query(default_lake, "select count(*) from posts where month = '2017-07'")
    assert quarantine[0][0] > 0


@pytest.mark.parametrize("sql", ["create table x as select 1", "copy (select 1) to 'x.csv'",
                                 "insert into posts select * from posts", "attach 'x.db' as x", "set threads=1",
                                 "select 1; drop view posts", "install httpfs"])
def test_writes_are_refused(default_lake: Path, sql: str) -> None:
    with pytest.raises(QueryError, match="refused|cannot parse"):
        run_query(default_lake, sql)


def test_cli_formats(default_lake: Path) -> None:
    sql = "select community, count(*) as n from posts group by 1 order by 1"
    result = runner.invoke(app, ["query", sql, "--lake", str(default_lake), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"community": "teachers", "n": 1000} in data
    csv_result = runner.invoke(app, ["query", sql, "--lake", str(default_lake), "--format", "csv"])
    assert csv_result.stdout.splitlines()[0] == "community,n"
    table = runner.invoke(app, ["query", "select min(created_at) first from posts", "--lake", str(default_lake)])
    assert table.exit_code == 0 and "2009" in table.stdout


def test_cli_errors_are_clear(default_lake: Path, tmp_path: Path) -> None:
    refused = runner.invoke(app, ["query", "delete from posts", "--lake", str(default_lake)])
    assert refused.exit_code == 2 and "only reads" in refused.output
    missing = runner.invoke(app, ["query", "select 1", "--lake", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no lake" in missing.output
    unknown = runner.invoke(app, ["query", "select * from nosuch", "--lake", str(default_lake)])
    assert unknown.exit_code == 2 and "views available" in unknown.output and "posts" in unknown.output


def test_sandbox_reads_nothing_but_the_lake(default_lake: Path, tmp_path: Path) -> None:
    """The pseudonym key, another lake, the manifests and any file of the machine stay out of reach."""
    import shutil

    secret = tmp_path / "pseudonym.key"
    secret.write_text("the-hmac-key-that-reidentifies-every-author")
    inside = default_lake / "planted-secret.txt"  # a stray file inside the lake but outside every table
    inside.write_text("the-hmac-key-that-reidentifies-every-author")
    other = tmp_path / "other-lake"
    shutil.copytree(default_lake / "posts" / "platform=reddit" / "community=teachingresources",
                    other / "posts" / "community=teachingresources")
    manifest = next((default_lake / "runs").glob("*/manifest.json"))
    try:
        attempts = [f"select * from read_text('{secret}')", f"select * from read_text('{inside}')",
                    "select * from read_csv('/etc/passwd', sep=':')", "select * from read_blob('/etc/hostname')",
                    "select * from glob('/root/**')", f"select * from glob('{default_lake}/**')",
                    f"select count(*) from read_parquet('{other}/**/*.parquet')",
                    f"select * from read_json('{manifest}')",
                    f"select * from read_text('{default_lake}/posts/../planted-secret.txt')",
                    f"select * from read_csv('{default_lake / 'posts'}/../../{secret.parent.name}/pseudonym.key')"]
        for sql in attempts:
            with pytest.raises(QueryError, match="refused: `edumine query` reads the lake's tables") as caught:
                run_query(default_lake, sql)
            assert "reidentifies" not in str(caught.value)
        # what the sandbox must still allow: the views, and the lake's own Parquet read directly
        _, rows = run_query(default_lake, f"select count(*) from read_parquet('{default_lake}/posts/**/*.parquet')")
        assert rows[0][0] == run_query(default_lake, "select count(*) from posts")[1][0][0] > 0
    finally:
        inside.unlink()
