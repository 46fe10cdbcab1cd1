"""What it costs: usage billing. The pure rules (what a data operation is, the plans and their
limits, the warning thresholds, which devices are billable, billing periods) and what applies
them: the ledger, the stored plans, the pauses, the scheduler and the usage views. `billing`
stands beside `fleet` and neither imports the other.
"""
