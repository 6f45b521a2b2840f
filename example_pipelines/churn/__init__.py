"""Churn example: ``events`` + ``labels`` joined per cohort day into ``features``, then ``churn_model``.

- ``generate``: deterministic synthetic data, one file per cohort day in each of ``events/`` and
  ``labels/`` (a new day adds files; earlier days' files stay byte-identical).
- ``features``: the ``features`` pipeline; per datum (one day's events file joined with the same
  day's labels file) one row per customer: event counts, spend, activity, and the label.
- ``train``: the ``churn_model`` pipeline; a scikit-learn logistic regression on all features,
  tracked in MLflow through ``pachflow.worker.pachyderm_run``.
- ``specs/``: the Pachyderm 2.12 pipeline specs (project ``research``).
"""

# Column names shared by the generator, the features step and the trainer.
KEY = "customer_id"
LABEL = "churned"
EVENT_TYPES = ("login", "purchase", "support_ticket")
EVENT_COLUMNS = (KEY, "ts", "event", "amount")
LABEL_COLUMNS = (KEY, LABEL)
FEATURE_COLUMNS = (
    "n_events",
    "n_login",
    "n_purchase",
    "n_support_ticket",
    "spend",
    "active_hours",
)
