"""The measurements of the production notebooks, on the processes ``helpers.stack`` starts.

- ``deploys``, ``interpreters`` and ``wait_closed`` (a standard-library probe): notebook 09, a deploy's signal
  and wait on one Python per minor version found here (``recorded_09.json``);
- ``proxy``, ``pubsub`` and ``live`` (its live plot): notebook 10, clients through nginx and a Redis feed
  (``recorded.py``, ``recorded_10.json``);
- ``stalled``: notebook 11, clients that stop reading a heavy sender (``recorded_11.json``).

Where what a measurement needs is missing here (nginx, another Python), the results recorded with the lab are
shown instead, labelled as such.
"""
