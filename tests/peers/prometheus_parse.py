"""Parses a Prometheus text exposition (stdin) with the official client's parser and prints every sample as a
JSON list of [name, labels, value]: the test then asserts on what a real scraper would read."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append([s.name, s.labels, s.value])
json.dump(samples, sys.stdout)
