"""``touchpoint bench``: Touchpoint's speed, latency and memory against baselines on the same data.

The machines this runs on are shared and noisy, so every figure is measured in one run, on one
broker and one ClickHouse, against baselines (a bare aiokafka consumer, a bare Faust agent, a
naive Faust job and the same job in Quix Streams) and reported as ratios. The Touchpoint worker
is treated as a black box: a ``touchpoint worker`` subprocess observed only through its metrics
endpoint, ClickHouse rows, its changelog topic and ``/proc``, so any version of it is measured
the same way.
"""
