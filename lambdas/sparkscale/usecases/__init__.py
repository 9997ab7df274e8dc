"""The use cases, each a short orchestration on the one shell (shell.py: lease, notices, ledger, prices,
outcomes): `scale` (evaluate a cluster: the alarm and reconcile handlers), `spot_events` (move a node that
EC2 is about to reclaim) and `emr_events` (spot fallback on EMR's capacity events; a terminated cluster)."""
