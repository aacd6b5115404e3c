import pytest

from helpers.errors import LabError
from helpers.routes import check_websocket_path, load_app, websocket_paths
from tests.support import endpoints

pytestmark = pytest.mark.fast  # every test here is pure: no process, no server


def test_an_app_path_string_is_imported():
    assert load_app("tests.support.endpoints:app") is endpoints.app


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.no_such_module:app", "Cannot import module 'tests.no_such_module'"),
        ("tests.support.endpoints:no_such_app", "has no attribute 'no_such_app'"),
        ("tests.support.endpoints", "should look like 'package.module:app'"),
    ],
)
def test_a_wrong_app_path_says_what_is_wrong_in_one_sentence(path, message):
    with pytest.raises(LabError, match=message) as raised:
        load_app(path)
    assert "\n" not in str(raised.value)


def test_websocket_routes_are_listed():
    assert set(websocket_paths(endpoints.app)) >= {"/echo", "/stuck", "/receiver"}


def test_an_http_route_is_refused_as_a_websocket_path():
    with pytest.raises(LabError, match="'/health' is an HTTP route, not a WebSocket route"):
        check_websocket_path(endpoints.app, "/health")


def test_a_missing_route_is_refused_with_the_routes_that_exist():
    with pytest.raises(LabError, match=r"no WebSocket route at '/nope'.*/echo"):
        check_websocket_path(endpoints.app, "/nope")


def test_an_app_path_may_name_an_attribute_of_an_attribute():
    assert load_app("tests.support.endpoints:app.router") is endpoints.app.router


def test_an_app_module_that_raises_on_import_is_refused_with_where_it_raised(tmp_path, monkeypatch):
    (tmp_path / "raising_app.py").write_text("app = None\nraise ValueError('no settings')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LabError, match=r"Importing 'raising_app' raised ValueError: no settings at .*raising_app.py:2"):
        load_app("raising_app:app")
