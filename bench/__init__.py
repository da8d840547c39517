"""The est-hw benchmark harness: ``make bench`` (``python -m bench.run``).

Everything is measured as medians over repeated runs, against baselines taken in the same
run (``python -c pass``, a minimal stdlib EST client against the same server), so the
numbers are ratios on this machine rather than absolute claims.
"""
