"""`make bench`: the throughput and latency bench against a deployed stack (run.py), its
anchors (bare apps in the API image), its report, and the ABBA comparisons of two API
images (image_abba.py) or two HAProxy configs (haproxy_abba.py)."""
