
from helpers import clients
from helpers.probe import Probe
from helpers.servers import serve
from tests.support import endpoints
from tests.support.polling import eventually


def test_the_probe_finds_a_handler_deep_in_the_await_chain():
    server = serve(endpoints.app)
    probe = Probe(server, {"stuck": endpoints.stuck, "inner_wait": endpoints.inner_wait})
    clients.connect(server.url("/stuck"), 4)
    assert eventually(lambda: probe.alive() == {"stuck": 4, "inner_wait": 4})


def test_the_probe_finds_a_watched_function_running_in_a_task_of_its_own():
    server = serve(endpoints.app)
    endpoints.orphans.clear()
    probe = Probe(server, {"spawner": endpoints.spawner, "inner_wait": endpoints.inner_wait})
    group = clients.connect(server.url("/spawner"), 3)
    assert eventually(lambda: probe.alive() == {"spawner": 3, "inner_wait": 3})
    clients.leave(group, "clean")
    assert eventually(lambda: probe.alive() == {"spawner": 0, "inner_wait": 3})


def test_a_sample_counts_connections_extra_tasks_and_file_descriptors():
    server = serve(endpoints.app)
    probe = Probe(server, endpoints.stuck)
    idle = probe.sample()
    clients.connect(server.url("/stuck"), 5)
    assert eventually(lambda: probe.sample().alive["stuck"] == 5)
    busy = probe.sample()
    assert busy.connections == idle.connections + 5
    assert busy.extra_tasks >= idle.extra_tasks + 5
    assert busy.fds >= idle.fds + 10  # each connection holds a server and a client socket


def test_twenty_samples_in_a_row_each_count_every_one_of_a_hundred_handlers():
    """What a sample costs is the benchmark's figure (probe: ms per sample per 1,000 live tasks), not a test's."""
    server = serve(endpoints.app)
    probe = Probe(server, endpoints.stuck)
    clients.connect(server.url("/stuck"), 100)
    assert eventually(lambda: probe.alive()["stuck"] == 100)
    assert [probe.sample().alive["stuck"] for _ in range(20)] == [100] * 20
