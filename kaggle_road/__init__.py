"""The road from this repository to a leaderboard score, through the `kaggle` package (scripts/push.py runs it).

- client.py: the kaggle client, its credentials, an HTTP timeout, retries and one-line errors
- steps.py: each step on Kaggle for one kernel: push, status, wait, output, submit, score
- checks.py: what must hold before a GPU session or a submission is spent
- road.py: the steps strung together, each run kept in the ledger
- sessions.py: several sessions at once, their blend submitted once
- bundle.py, blend.py, ledger.py: the one-file kernel, runs blended, the run ledger
None of it travels to Kaggle: the bundle carries digit_recognizer/ alone.
"""
