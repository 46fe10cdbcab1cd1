"""What it costs: the rules of usage billing (what a data operation is, the plans and their
limits, the warning thresholds, which devices are billable, billing periods).

Everything here is pure so far: the ledger, the views and the scheduler build on it. `billing`
stands beside `fleet` and neither imports the other.
"""
