"""The replay: a what-if simulator that runs the real policy (usecases.scale.run_once with simulated adapters
and a simulated clock) over a demand trace, next to EMR's default custom rules, static peak provisioning and
an oracle, and scores them. Not part of the Lambda asset; matplotlib is imported only to plot."""
