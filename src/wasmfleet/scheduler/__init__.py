"""Pure placement: which host should run a workload replica, and why the others were refused.

`candidates` holds the input types, `filters` the yes/no checks, `placement.choose` the decision.
Nothing here does I/O, so the operator can call it inline and tests can cover it exhaustively.
"""
