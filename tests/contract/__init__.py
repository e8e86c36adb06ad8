"""The contract suite: one table of losses (cases.py), one set of checks (test_contract.py)."""
