"""[tool.ws-leakcheck] in a project's pyproject.toml, and how flags override it (no server runs here)."""

import pytest

from ws_leakcheck import cli, config
from ws_leakcheck.config import Script
from ws_leakcheck.errors import UsageError

pytestmark = pytest.mark.fast

TABLE = """
[tool.ws-leakcheck]
app = "chat.main:app"
app-dir = "src"
clients = 2
ways = ["fin", "rst"]
ping-interval = "none"
allow-noisy = true

[tool.ws-leakcheck.routes."/ws/feed"]
query = "token=${FEED_TOKEN}"
headers = ["Authorization: Bearer ${FEED_TOKEN}"]
subprotocols = ["v1"]
send = ['{"type": "hello"}']

[tool.ws-leakcheck.routes."/ws/room"]
query = {room = "1", user = "ci"}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(TABLE)
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")  # found from a folder below, too
    monkeypatch.setenv("FEED_TOKEN", "t0ken")
    return tmp_path


def test_the_table_gives_the_app_its_folder_settings_and_each_routes_script(project):
    table = config.load()
    assert (table.app, table.app_dir, table.default_paths()) == ("chat.main:app", project / "src",
                                                                 ("/ws/feed", "/ws/room"))
    assert table.settings == {"clients": 2, "ways": ("fin", "rst"), "ping_interval": "none", "allow_noisy": True}
    assert table.script("/ws/feed") == Script(send=('{"type": "hello"}',), headers=(("Authorization", "Bearer t0ken"),),
                                              subprotocols=("v1",), query="token=t0ken")
    assert table.script("/ws/room?x=1").url_path("/ws/room") == "/ws/room?room=1&user=ci"
    assert table.script("/ws/other") == Script()


def test_a_query_in_the_path_wins_over_the_routes_query():
    assert Script(query="token=a").url_path("/ws/feed?token=b") == "/ws/feed?token=b"


def test_flags_override_the_table_field_by_field(project):
    args = cli.parser().parse_args(["/ws/feed", "--send", "bye", "--clients", "4", "--ping-interval", "0.2"])
    table = config.load()
    app, paths = cli._app_and_paths(args, table)
    options = cli.options_from(args, table, paths)
    assert (app, paths) == ("chat.main:app", ["/ws/feed"])
    assert (options.clients, options.ways, options.ping_interval) == (4, ("fin", "rst"), 0.2)
    feed = options.script_for("/ws/feed")
    assert feed.send == ("bye",) and feed.query == "token=t0ken" and feed.subprotocols == ("v1",)
    assert options.app_dir == str(project / "src")


def test_without_paths_the_command_checks_the_tables_routes(project):
    args = cli.parser().parse_args([])
    assert cli._app_and_paths(args, config.load()) == ("chat.main:app", ["/ws/feed", "/ws/room"])


def test_a_variable_that_is_not_set_is_named_when_its_route_is_checked(project, monkeypatch):
    monkeypatch.delenv("FEED_TOKEN")
    table = config.load()  # loading is fine: /ws/room does not need it
    with pytest.raises(UsageError, match=r"uses \$\{FEED_TOKEN\}, which is not set in the environment"):
        table.script("/ws/feed")


@pytest.mark.parametrize(("table", "message"), [
    ('clients = "two"', "clients = 'two' has the wrong type"),
    ("colour = 1", "unknown key(s) colour"),
    ('[tool.ws-leakcheck.routes."/ws/x"]\ntoken = "t"', 'routes."/ws/x" has unknown key(s) token'),
    ('[tool.ws-leakcheck.routes."ws/x"]\nsend = []', "should be a path starting with '/'"),
    ('[tool.ws-leakcheck.routes."/ws/x"]\nheaders = ["no colon"]', "should look like 'Name: value'"),
    ('paths = "/ws/x"', "paths should be a list of strings"),
])
def test_a_wrong_table_is_a_usage_error_that_says_where(tmp_path, table, message):
    (tmp_path / "pyproject.toml").write_text("[tool.ws-leakcheck]\n" + table + "\n")
    with pytest.raises(UsageError, match=r"\[tool.ws-leakcheck\] in .*pyproject.toml") as error:
        config.load(tmp_path)
    assert message in str(error.value)


def test_a_project_without_the_table_gives_an_empty_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert config.load(tmp_path) == config.Config()


def test_without_app_anywhere_the_command_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"Give the app as MODULE:ATTRIBUTE .* or set app in \[tool.ws-leakcheck\]"):
        cli._app_and_paths(cli.parser().parse_args(["/ws/x"]), config.load())
