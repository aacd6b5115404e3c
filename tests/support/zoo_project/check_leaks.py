"""The project's own leak tests, through ws-leakcheck's pytest plugin (run by the lab's tests/leakcheck/test_plugin.py
in a fresh environment: plain `pytest`, from this folder)."""


def test_the_feed_waiter_is_caught(leakcheck):
    leakcheck("/ws/notifications")


def test_its_fixed_twin_passes(leakcheck):
    leakcheck("/ws/notifications-fixed")


def test_the_secure_feed_leaks_with_the_script_of_its_route(leakcheck):
    leakcheck("/ws/secure-feed")


def test_a_wrong_first_message_fails_as_untested(leakcheck):
    leakcheck("/ws/secure-feed", send=['{"typ": "hello"}'])
