"""Names shared by the stack (infra/), the handlers, the heap agent, the replay and the tests.

One place, so that an alarm, the metric the agent publishes and the query the handler makes cannot drift.
Pure constants: importing this module has no side effects.
"""

from __future__ import annotations

from typing import Final

# --- Lambda environment -------------------------------------------------------------------------------------
ENV_CONFIG_JSON: Final = "SPARKSCALE_CONFIG_JSON"  # the whole validated config, as JSON (see config.py)
ENV_TABLE_NAME: Final = "SPARKSCALE_TABLE_NAME"  # DynamoDB table: lease, state, audit, idempotency
ENV_OPERATOR_TOPIC_ARN: Final = "SPARKSCALE_OPERATOR_TOPIC_ARN"  # SNS topic operators subscribe to
ENV_OPERATOR_ALARM_TOPIC_ARN: Final = "SPARKSCALE_OPERATOR_ALARM_TOPIC_ARN"  # alarms for people (discovery)
ENV_ALARM_PREFIX: Final = "SPARKSCALE_ALARM_PREFIX"  # prefix of every alarm the stack creates
ENV_ALARM_TOPIC_ARN: Final = "SPARKSCALE_ALARM_TOPIC_ARN"  # discovery: where the alarms it creates notify
ENV_HEAP_ALARMS: Final = "SPARKSCALE_HEAP_ALARMS"  # discovery: "false" leaves out the heap agent's alarms
ENV_DRY_RUN: Final = "SPARKSCALE_DRY_RUN"  # "true" overrides the config's dry_run (an emergency brake)
ENV_EVALUATION_QUEUE_URL: Final = "SPARKSCALE_EVALUATION_QUEUE_URL"  # reconcile: fan out to this queue
# Powertools' own variables, set by the stack
ENV_POWERTOOLS_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
ENV_POWERTOOLS_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"

SERVICE_NAME: Final = "sparkscale"

# --- Metrics the scaler emits (EMF, Powertools Metrics), dimension ClusterId --------------------------------
SCALER_NAMESPACE: Final = "Sparkscale"
DIM_CLUSTER_ID: Final = "ClusterId"
M_SCALING_ACTIONS: Final = "ScalingActions"
M_DESIRED_TASK_NODES: Final = "DesiredTaskNodes"
M_RUNNING_TASK_NODES: Final = "RunningTaskNodes"
M_DECISION_LATENCY_MS: Final = "DecisionLatencyMs"
M_REJECTED_EVENTS: Final = "RejectedEvents"
M_FAILURES: Final = "Failures"
M_WEEKLY_COMPARISONS_SKIPPED: Final = "WeeklyComparisonsSkipped"  # digest: a cluster's week not compared
M_EVALUATIONS_SENT: Final = "EvaluationsSent"  # reconcile: evaluation messages queued
M_EVALUATIONS_DEFERRED: Final = "EvaluationsDeferred"  # reconcile: left to a later period (rate budget)
M_EVALUATIONS_NOT_NEEDED: Final = "EvaluationsNotNeeded"  # reconcile: at minimum, recently evaluated
M_AT_MAX_UNDER_PRESSURE: Final = "AtMaxUnderPressure"
M_SPOT_EVENTS: Final = "SpotEvents"  # spot interruption warnings and rebalance recommendations handled
M_SPOT_REPLACEMENTS: Final = "SpotReplacements"  # nodes moved to another pool after one of those
M_CAPACITY_EVENTS: Final = "CapacityEvents"  # EMR events recorded as spot capacity errors (stuck, arrested)

# --- Operator notices: the SNS MessageAttribute `kind` of every notice the Lambdas publish -----------------
# Email subscriptions filter on it (a subscription filter policy); other subscribers (chat) get every kind.
NOTICE_KIND_ACTION: Final = "action"  # a resize was made
NOTICE_KIND_DRY_RUN: Final = "dry_run"  # a resize was decided, not made (dry run)
NOTICE_KIND_FAILURE: Final = "failure"  # reading, deciding or resizing failed
NOTICE_KIND_AT_MAX: Final = "at_max"  # at the upper bound (or budget) and still under pressure
NOTICE_KIND_CLUSTER_GONE: Final = "cluster_gone"  # the cluster ended: scaling stopped for it
NOTICE_KIND_FALLBACK: Final = "fallback"  # spot did not come: capacity moved to another pool or on-demand
NOTICE_KIND_INTERRUPTION: Final = "interruption"  # a spot warning handled: node moved or left to EMR
NOTICE_KIND_REPLACEMENT_FAILED: Final = "replacement_failed"  # a reclaimed node could not be replaced
NOTICE_KIND_DISCOVERY: Final = "discovery"  # a cluster managed by tag: adopted or released
NOTICE_KIND_DISCOVERY_REFUSED: Final = "discovery_refused"  # tagged, but its tags are wrong
NOTICE_KIND_DIGEST: Final = "digest"  # the daily digest: one email a day from the audit records
NOTICE_KINDS: Final = (
    NOTICE_KIND_ACTION,
    NOTICE_KIND_DRY_RUN,
    NOTICE_KIND_FAILURE,
    NOTICE_KIND_AT_MAX,
    NOTICE_KIND_CLUSTER_GONE,
    NOTICE_KIND_FALLBACK,
    NOTICE_KIND_INTERRUPTION,
    NOTICE_KIND_REPLACEMENT_FAILED,
    NOTICE_KIND_DISCOVERY,
    NOTICE_KIND_DISCOVERY_REFUSED,
    NOTICE_KIND_DIGEST,
)
# Alerts: what needs a person. Routine actions stay on the operator topic without being emailed.
NOTICE_KINDS_EMAILED_BY_DEFAULT: Final = (
    NOTICE_KIND_FAILURE,
    NOTICE_KIND_AT_MAX,
    NOTICE_KIND_CLUSTER_GONE,
    NOTICE_KIND_FALLBACK,
    NOTICE_KIND_REPLACEMENT_FAILED,
    NOTICE_KIND_DISCOVERY_REFUSED,
    NOTICE_KIND_DIGEST,
)

# --- EMR's own metrics (AWS/ElasticMapReduce, dimension JobFlowId, 300 s, not configurable) -----------------
EMR_NAMESPACE: Final = "AWS/ElasticMapReduce"
DIM_JOB_FLOW_ID: Final = "JobFlowId"
EMR_TOTAL_LOAD: Final = "TotalLoad"
EMR_YARN_MEMORY_AVAILABLE_PCT: Final = "YARNMemoryAvailablePercentage"
EMR_MEMORY_TOTAL_MB: Final = "MemoryTotalMB"
EMR_MEMORY_ALLOCATED_MB: Final = "MemoryAllocatedMB"
EMR_MEMORY_AVAILABLE_MB: Final = "MemoryAvailableMB"
EMR_CONTAINER_PENDING: Final = "ContainerPending"
EMR_CONTAINER_ALLOCATED: Final = "ContainerAllocated"
EMR_CONTAINER_PENDING_RATIO: Final = "ContainerPendingRatio"
EMR_APPS_RUNNING: Final = "AppsRunning"
EMR_APPS_PENDING: Final = "AppsPending"
EMR_IS_IDLE: Final = "IsIdle"
EMR_PERIOD_S: Final = 300

# --- Spark JVM heap, published by the node agent (bootstrap/), dimension JobFlowId only ---------------------
# Every node's agent publishes to the same per-cluster metric, so the cluster-wide value is the SUM over nodes
# (bytes and counts) or the MAXIMUM (per-JVM worst case). The statistic to read each with is given beside it.
HEAP_NAMESPACE: Final = "Sparkscale/SparkHeap"
HEAP_PERIOD_S: Final = 60
HEAP_EXECUTOR_USED_BYTES: Final = "JvmHeapUsed"  # Sum: executor heap used, bytes (the seed's "JvmHeapUsed")
HEAP_EXECUTOR_MAX_BYTES: Final = "JvmHeapMax"  # Sum: executor heap max, bytes
HEAP_EXECUTOR_USED_PCT: Final = "JvmHeapUsedPercent"  # Average: per node used/max of its executors, percent
HEAP_EXECUTOR_MAX_JVM_USED_PCT: Final = "JvmHeapUsedPercentMaxJvm"  # Maximum: the fullest single executor
HEAP_JVM_COUNT: Final = "JvmCount"  # Sum: executor JVMs reporting
HEAP_DRIVER_USED_BYTES: Final = "DriverHeapUsed"  # Sum: driver heap used, bytes
HEAP_DRIVER_MAX_BYTES: Final = "DriverHeapMax"  # Sum: driver heap max, bytes
HEAP_DRIVER_USED_PCT: Final = "DriverHeapUsedPercent"  # Maximum: the fullest driver, percent
# Spark dynamic allocation demand: the driver's ExecutorAllocationManager gauges, in the same StatsD stream.
# In the heap namespace because every node's agent may host a driver (cluster deploy mode): Sum over nodes.
# Published only by a node where a driver reports them (no datum at all when dynamic allocation is off).
SPARK_EXECUTORS_NEEDED: Final = "SparkExecutorsNeeded"  # Sum: executors the running apps could use now
SPARK_EXECUTORS_TARGET: Final = "SparkExecutorsTarget"  # Sum: executors the apps currently ask YARN for

# --- YARN ResourceManager, polled by the agent on the master node only, dimension JobFlowId only ------------
# Polled every YARN_POLL_S; each minute's samples go out as one statistic set per metric (SampleCount, Sum,
# Minimum, Maximum), so Maximum, Minimum and Average (Sum/SampleCount) of the 10 s samples can all be read.
# Read demand at its peak and free room at its lowest: Maximum, except YarnAvailableMemoryMB (Minimum) and
# the two the policy adds up, YarnAllocatedMemoryMB and YarnPendingMemoryMB (Average: their Maxima come from
# different polls, and in a minute in which YARN allocates what was pending, Maximum + Maximum counts that
# memory twice; Average + Average is the minute's average demand). The wake-up alarm reads pending memory's
# Maximum. A minute in which no poll succeeded has no datum (never zeros).
# With the agent's --yarn-high-resolution each 10 s sample is its own datum (StorageResolution 1).
YARN_NAMESPACE: Final = "Sparkscale/Yarn"
YARN_PERIOD_S: Final = 60
YARN_POLL_S: Final = 10
YARN_PENDING_MEMORY_MB: Final = "YarnPendingMemoryMB"  # Average (alarm: Maximum): asked for, not allocated
YARN_ALLOCATED_MEMORY_MB: Final = "YarnAllocatedMemoryMB"  # Average
YARN_AVAILABLE_MEMORY_MB: Final = "YarnAvailableMemoryMB"  # Minimum
YARN_TOTAL_MEMORY_MB: Final = "YarnTotalMemoryMB"  # Maximum
YARN_CONTAINERS_PENDING: Final = "YarnContainersPending"  # Maximum
YARN_APPS_PENDING: Final = "YarnAppsPending"  # Maximum
YARN_APPS_RUNNING: Final = "YarnAppsRunning"  # Maximum
YARN_METRICS: Final = (  # every metric the collector publishes, in this order
    YARN_PENDING_MEMORY_MB,
    YARN_ALLOCATED_MEMORY_MB,
    YARN_AVAILABLE_MEMORY_MB,
    YARN_TOTAL_MEMORY_MB,
    YARN_CONTAINERS_PENDING,
    YARN_APPS_PENDING,
    YARN_APPS_RUNNING,
)

# --- Spark Streaming metrics (issue 17), published by the node agent, dimension JobFlowId only ------------
# From the same StatsD stream as the heap (Spark's StatsdSink on the driver). Every node's agent publishes to
# the same per-cluster metric, so read each with the statistic beside it. No datum when no query reports.
STREAMING_NAMESPACE: Final = "Sparkscale/SparkStreaming"
STREAMING_PERIOD_S: Final = 60
STREAMING_INPUT_ROWS_PER_S: Final = "StreamingInputRowsPerSecond"  # Sum over queries and nodes
STREAMING_PROCESSED_ROWS_PER_S: Final = "StreamingProcessedRowsPerSecond"  # Sum over queries and nodes
STREAMING_BATCH_LATENCY_MS: Final = "StreamingBatchLatencyMs"  # Maximum over queries and nodes
STREAMING_SCHEDULING_DELAY_MS: Final = "StreamingSchedulingDelayMs"  # Maximum (DStreams)
STREAMING_WAITING_BATCHES: Final = "StreamingWaitingBatches"  # Sum (DStreams)
STREAMING_METRICS: Final = (  # every streaming metric the agent publishes, in this order
    STREAMING_INPUT_ROWS_PER_S,
    STREAMING_PROCESSED_ROWS_PER_S,
    STREAMING_BATCH_LATENCY_MS,
    STREAMING_SCHEDULING_DELAY_MS,
    STREAMING_WAITING_BATCHES,
)

# --- Kinesis streams a streaming cluster consumes (issue 17; Config.streams, tag TAG_KINESIS_STREAMS) ---
KINESIS_NAMESPACE: Final = "AWS/Kinesis"
KINESIS_ITERATOR_AGE: Final = "GetRecords.IteratorAgeMilliseconds"  # stream level, read with Maximum
KINESIS_PERIOD_S: Final = 60
DIM_STREAM_NAME: Final = "StreamName"

# --- Alarm names (prefix + cluster id + kind); the handlers recognise their own alarms by these -------------
ALARM_KIND_TOTAL_LOAD: Final = "total-load"
ALARM_KIND_YARN_MEMORY: Final = "yarn-memory-low"
ALARM_KIND_CONTAINER_PENDING: Final = "container-pending"
ALARM_KIND_IDLE: Final = "idle"
ALARM_KIND_HEAP_PCT: Final = "heap-pct"
ALARM_KIND_HEAP_BYTES: Final = "heap-bytes"
ALARM_KIND_HEAP_MISSING: Final = "heap-agent-silent"
ALARM_KIND_HEAP_CRITICAL: Final = "heap-critical"
ALARM_KIND_YARN_PENDING: Final = "yarn-pending-memory"  # the YARN collector: memory waits (wakes the scaler)
ALARM_KIND_YARN_MISSING: Final = "yarn-collector-silent"  # the YARN collector stopped publishing (operators)
# a Kinesis stream's iterator age keeps rising (wakes the scaler): one alarm per stream, "-<stream>" after it
ALARM_KIND_KINESIS_AGE: Final = "kinesis-age-rising"

# --- EventBridge events the stack routes to the handlers (the rules in infra/ and the parsers in events/) ---
EVENT_SOURCE_CLOUDWATCH: Final = "aws.cloudwatch"
EVENT_SOURCE_EC2: Final = "aws.ec2"
EVENT_SOURCE_EMR: Final = "aws.emr"
DETAIL_ALARM_STATE_CHANGE: Final = "CloudWatch Alarm State Change"
DETAIL_SPOT_INTERRUPTION: Final = "EC2 Spot Instance Interruption Warning"
DETAIL_REBALANCE_RECOMMENDATION: Final = "EC2 Instance Rebalance Recommendation"
DETAIL_EMR_GROUP_STATE_CHANGE: Final = "EMR Instance Group State Change"
DETAIL_EMR_CLUSTER_STATE_CHANGE: Final = "EMR Cluster State Change"
DETAIL_EMR_FLEET_RESIZE: Final = (
    "EMR Instance Fleet Resize"  # instance fleets: resize timeouts (events/fleet.py)
)
# the event codes of "EMR Instance Fleet Resize" that say spot did not come (matched case-insensitively; EMR's
# guide writes both "Spot Provisioning timeout" and "Spot provisioning timeout - continuing resize")
EMR_FLEET_SPOT_TIMEOUT_CODE: Final = "Spot Provisioning timeout"

# --- Clusters managed by tag (docs/clusters-by-tag.md; the opt-in tag itself is a setting) ------------------
TAG_PROFILE: Final = "sparkscale:profile"  # the cluster's settings profile (Config.profiles)
TAG_PAUSED: Final = "sparkscale:paused"  # "true": this cluster is decided on but never resized (dry run)
TAG_KINESIS_STREAMS: Final = "sparkscale:kinesis-streams"  # "a,b": the Kinesis streams it consumes (streams)
EVENT_SOURCE_SCHEDULE: Final = "aws.events"  # EventBridge's own schedule: the discovery sweep
DETAIL_SCHEDULED_EVENT: Final = "Scheduled Event"
# EMR cluster states in which a tagged cluster is adopted (the sweep lists these, the rule routes them)
EMR_ACTIVE_STATES: Final = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
EMR_ENDED_STATES: Final = ("TERMINATED", "TERMINATED_WITH_ERRORS")

# --- DynamoDB single-table layout ---------------------------------------------------------------------------
TABLE_PK: Final = "pk"
TABLE_SK: Final = "sk"
TABLE_TTL_ATTR: Final = "expires_at"
# the master-node agent's YARN node report (agent/nodes.py): its own partition, so the EMR instance role can
# be allowed PutItem on exactly it (dynamodb:LeadingKeys sees only the partition key)
NODE_REPORT_PK_PREFIX: Final = "nodes#"
NODE_REPORT_SK: Final = "nodes"
REGISTRY_PK: Final = "registry"  # one item per cluster managed by tag: pk "registry", sk "cluster#<id>"


def alarm_name(prefix: str, cluster_id: str, kind: str) -> str:
    """`<prefix>-<cluster id>-<kind>`, the name every stack alarm has."""
    return f"{prefix}-{cluster_id}-{kind}"
