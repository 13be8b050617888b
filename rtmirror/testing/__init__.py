"""Fixtures with real parts, shared by the tests and the benchmarks: the probe encoder and test
signals (probe.py), a JACK dummy server and its player/recorder clients (jack.py). Importing this
package starts nothing."""
