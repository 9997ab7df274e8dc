"""The pure scaling policy: a snapshot of a cluster and its metrics in, a Decision with reasons out.

No I/O of any kind: no boto3, no os.environ, no clock, no logging. `now` and every input are passed in.
"""
