"""One demo run: the embedded AWS from the template, the EMR cluster, the replay of a trace through the real
handlers in simulated time, then the comparison with the replay's baselines and the output files.

The simulated clock: the handlers read `now` from their Runtime (`Runtime.clock`); the demo builds one Runtime
per function and gives each the simulation's clock, so nothing global is rebound.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import math
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TextIO

from sparkscale import names
from sparkscale.config import Config
from sparkscale.policy.model import Market, Role

from sparkscale_tools.demo import aws
from sparkscale_tools.demo import digest as demo_digest
from sparkscale_tools.demo import fleet as fl
from sparkscale_tools.demo import template as tp
from sparkscale_tools.demo.console import Console
from sparkscale_tools.demo.sim import DemoController, DemoStats, Scenario
from sparkscale_tools.demo.tagged import TaggedScenario, TaggedStats
from sparkscale_tools.demo.tagged import summary_lines as tagged_lines
from sparkscale_tools.replay import outputs
from sparkscale_tools.replay import policies as pol
from sparkscale_tools.replay.cluster import ClusterSpec, cluster_from_mapping
from sparkscale_tools.replay.engine import RunRecord, World
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.run import PolicySpec, ReplayResult, run_replay
from sparkscale_tools.replay.scores import score
from sparkscale_tools.replay.trace import Trace

DEMO_RUN: Final = "sparkscale (demo)"
# The demo cluster: MASTER, CORE and two SPOT TASK groups of different instance types (the replay's cluster
# file format; spot prices are the replay's assumed share of the bundled on-demand price).
DEFAULT_CLUSTER: Final[Mapping[str, Any]] = {
    "name": "demo",
    "core": {"instance_type": "r5.2xlarge", "nodes": 2},
    "task_groups": [
        {
            "id": "task-spot-r6g-4xl",
            "name": "task-spot-r6g-4xl",
            "instance_type": "r6g.4xlarge",
            "market": "SPOT",
        },
        {
            "id": "task-spot-r5-4xl",
            "name": "task-spot-r5-4xl",
            "instance_type": "r5.4xlarge",
            "market": "SPOT",
        },
    ],
}


def default_cluster(*, fleet: bool = False) -> ClusterSpec:
    """The demo's cluster: TASK groups, or with `fleet` a TASK instance fleet (DEFAULT_FLEET_CLUSTER)."""
    if fleet:
        return fl.with_fleet_ids(cluster_from_mapping(dict(fl.DEFAULT_FLEET_CLUSTER)))
    spec = cluster_from_mapping(dict(DEFAULT_CLUSTER))
    named = {Role.MASTER: "master", Role.CORE: "core"}
    return replace(spec, groups=tuple(replace(g, name=named.get(g.role, g.name)) for g in spec.groups))


@dataclass(frozen=True)
class DemoOptions:
    template: Path  # a template file or a cdk.out directory
    trace: Trace
    out_dir: Path
    cluster: ClusterSpec
    params: SimParams = field(default_factory=SimParams)
    seed: int = 0
    progress: bool = False
    full_emails: int = 3  # print the body of the first N operator emails (all go to the emails file)
    compare: bool = True  # run the replay's baselines for the summary
    # a tagged and an untagged cluster from a third to two thirds of the run (needs the `discovery` feature)
    tagged_cluster: bool = False

    @property
    def fleet(self) -> bool:
        """The cluster is an instance-fleet cluster (its TASK fleet's markets are the TASK groups)."""
        return fl.is_fleet_cluster(self.cluster)


@dataclass
class DemoResult:
    cluster_id: str
    endpoint: str  # the moto server's URL (stopped by the time the result exists)
    template: str
    stats: DemoStats
    record: RunRecord
    initial_task_nodes: dict[str, int]
    task_groups: dict[str, str]  # group id -> name
    replay: ReplayResult
    wall_s: float
    files: dict[str, Path]
    notes: list[str]
    signals: outputs.FreshSignals | None = None  # the plot's signal panel
    tagged: TaggedStats | None = None  # with DemoOptions.tagged_cluster
    fleet_requests: list[fl.FleetRequest] = field(
        default_factory=list
    )  # a fleet cluster: ModifyInstanceFleet
    unit_gib: float | None = None  # a fleet cluster: instance memory of one capacity unit

    @property
    def tagged_failures(self) -> list[str]:
        """What went wrong with the clusters managed by tag (empty without them)."""
        t = self.tagged
        if t is None:
            return []
        out = [
            f"the discovery handler failed on the tagged cluster at {w}"
            for w, c, a in t.discovery
            if c == t.tagged_id and a == "failed"
        ]
        out += [f"the untagged cluster's alarm {a} exists" for a in t.untagged_alarms]
        out += [f"the untagged cluster's group changed: {c}" for c in t.untagged_changed]
        out += ["the untagged cluster is in the registry"] if t.untagged_registered else []
        out += [f"the tagged cluster's alarm {a} outlived it" for a in t.alarms_left or []]
        out += (
            ["a handler evaluated the untagged cluster"]
            if t.untagged_id in self.stats.result_clusters
            else []
        )
        return out

    @property
    def max_requested(self) -> int:
        """Most TASK nodes requested at once in moto EMR during the run."""
        totals = [sum(self.initial_task_nodes.values())]
        totals += [sum(n for g, n in req.items() if g in self.task_groups) for _, req in self.stats.requested]
        return max(totals)

    @property
    def scaled_out(self) -> bool:
        return any(
            sum(n for g, n in req.items() if g in self.task_groups) > sum(self.initial_task_nodes.values())
            for _, req in self.stats.requested
        )

    @property
    def scaled_in_after_out(self) -> bool:
        seen_max = sum(self.initial_task_nodes.values())
        for _, req in self.stats.requested:
            total = sum(n for g, n in req.items() if g in self.task_groups)
            if total < seen_max:
                return True
            seen_max = max(seen_max, total)
        return False


# --- the handlers ---------------------------------------------------------------------------------------
def import_handlers(*, discovery: bool = False, emr_events: bool = False) -> dict[str, ModuleType]:
    """handlers.alarm, handlers.reconcile and handlers.common (and handlers.discovery): the package the
    construct deploys
    (`sparkscale_cdk.lambda_asset.handlers_dir`: lambdas/handlers in a checkout,
    sparkscale_cdk/_lambda_handlers in a wheel), imported under the name Lambda gives it, `handlers`."""
    from sparkscale_cdk.lambda_asset import handlers_dir  # noqa: PLC0415

    root = handlers_dir()
    if not (root / "alarm.py").is_file():
        raise tp.DemoError(f"the Lambda handlers are not in {root}")
    if "handlers" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "handlers", root / "__init__.py", submodule_search_locations=[str(root)]
        )
        if spec is None or spec.loader is None:  # pragma: no cover - a file location always has a loader
            raise tp.DemoError(f"cannot import the handlers from {root}")
        package = importlib.util.module_from_spec(spec)
        sys.modules["handlers"] = package
        spec.loader.exec_module(package)
    mods = {
        tp.ALARM_HANDLER: importlib.import_module("handlers.alarm"),
        tp.RECONCILE_HANDLER: importlib.import_module("handlers.reconcile"),
        "common": importlib.import_module("handlers.common"),
    }
    if discovery:
        mods[tp.DISCOVERY_HANDLER] = importlib.import_module("handlers.discovery")
    if emr_events:
        mods[tp.EMR_EVENTS_HANDLER] = importlib.import_module("handlers.emr_events")
    where = Path(mods["common"].__file__ or "").resolve().parent
    if where != root.resolve():
        raise tp.DemoError(f"`handlers` is imported from {where}, not from {root}")
    return mods


@contextlib.contextmanager
def handler_logs(mods: Mapping[str, ModuleType], stream: TextIO) -> Iterator[None]:
    """The handlers' Powertools log lines go to `stream` (not the console) while inside."""
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    seen: set[int] = set()
    for mod in mods.values():
        handler = getattr(getattr(mod, "logger", None), "registered_handler", None)
        if isinstance(handler, logging.StreamHandler) and id(handler) not in seen:
            seen.add(id(handler))
            swapped.append((handler, handler.setStream(stream)))
    try:
        yield
    finally:
        for handler, old in swapped:
            handler.setStream(old)


# --- the run ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Setup:
    """What exists in moto once the template and the cluster are created."""

    endpoint: str
    clients: aws.Clients
    tpl: tp.StackTemplate  # the template naming the moto cluster
    prov: aws.Provisioned
    spec: ClusterSpec  # the cluster with moto's ids
    start: dict[str, int]  # TASK group id -> nodes at the start (a fleet: market group id -> units)


def run_demo(opts: DemoOptions, *, out: TextIO, err: TextIO) -> DemoResult:
    """Run the demo; raises template.DemoError for inputs it cannot use. Everything it starts or patches is
    stopped or restored on the way out, whatever the way out (error, KeyboardInterrupt)."""
    t0 = time.perf_counter()
    tpl = tp.load(opts.template)
    demand = opts.trace.resample(opts.params.step_s)
    console = Console(out, err, progress=opts.progress)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "plot": opts.out_dir / "demo.png",
        "scores": opts.out_dir / "scores.json",
        "timeline": opts.out_dir / "timeline.csv",
        "decisions": opts.out_dir / "decisions.jsonl",
        "emails": opts.out_dir / "operator-emails.txt",
        "handler_log": opts.out_dir / "handler-logs.jsonl",
        "summary": opts.out_dir / "summary.txt",
        "digest": opts.out_dir / "digest.txt",
    }
    start = pol.warm_start(demand[0], cluster=opts.cluster, config=tpl.config)
    if opts.tagged_cluster and tp.DISCOVERY_HANDLER not in tpl.functions:
        raise tp.DemoError(
            f"{tpl.source}: --tagged-cluster needs a stack with the `discovery` feature "
            "(no function with handler handlers.discovery.handler)"
        )
    console.line(f"template: {tpl.source} (stack {tpl.stack_name}; managed cluster {tpl.cluster_ids[0]})")
    with aws.moto_server() as endpoint, aws.patched_environ({"AWS_ENDPOINT_URL": endpoint}):
        console.line(f"embedded AWS: moto server at {endpoint} (fake credentials, region {tp.REGION})")
        setup = _set_up(opts, tpl, endpoint, start)
        console.lines(_setup_lines(tpl, setup))
        record = RunRecord(DEMO_RUN)
        stats, notes, world, tagged, requests = _drive(
            opts, setup, demand=demand, record=record, console=console, handler_log=files["handler_log"]
        )
        with _quiet("sparkscale"):
            digest = demo_digest.digest_notice(
                setup.clients.dynamodb,
                setup.prov.table_name,
                setup.tpl.config,
                [setup.spec.cluster_id, *([tagged.tagged_id] if tagged is not None else [])],
                since=opts.params.epoch - timedelta(days=1),
            )
    console.lines(["", *demo_digest.console_lines(digest)])
    files["digest"].write_text(digest.subject + "\n\n" + digest.message if digest else "", encoding="utf-8")
    wall = time.perf_counter() - t0
    config, spec = setup.tpl.config, setup.spec
    with _quiet("sparkscale"):  # the baselines' own run_once calls log like the handlers: not on the console
        replay = (_compare if opts.compare else _alone)(opts, demand, spec, config, record)
    signals = fresh_signals(world, stats.decisions)
    _write_files(files, replay, stats, opts, signals)
    result = DemoResult(
        cluster_id=spec.cluster_id,
        endpoint=endpoint,
        template=tpl.source,
        stats=stats,
        record=record,
        initial_task_nodes=setup.start,
        task_groups={g.id: g.name for g in spec.task_groups},
        replay=replay,
        wall_s=wall,
        files=files,
        notes=notes + list(replay.notes),
        signals=signals,
        tagged=tagged,
        fleet_requests=requests,
        unit_gib=spec.task_groups[0].memory_gib if opts.fleet else None,
    )
    files["summary"].write_text(summary_text(result, trace_name=opts.trace.name), encoding="utf-8")
    return result


def _set_up(opts: DemoOptions, tpl: tp.StackTemplate, endpoint: str, start: Mapping[str, int]) -> _Setup:
    """The EMR cluster (RunJobFlow), then everything the template defines, naming that cluster."""
    c = aws.clients(endpoint)
    if opts.fleet:
        spec = fl.create_fleet_cluster(c.emr, opts.cluster, start)
    else:
        spec = aws.create_cluster(c.emr, opts.cluster, start)
    ids = {old.id: new.id for old, new in zip(opts.cluster.groups, spec.groups, strict=True)}
    tpl_c = tp.for_cluster(tpl, spec.cluster_id)
    prov = aws.provision(tpl_c, c, spec.cluster_id)
    return _Setup(endpoint, c, tpl_c, prov, spec, {ids[g]: n for g, n in start.items()})


def _drive(
    opts: DemoOptions,
    setup: _Setup,
    *,
    demand: list[float],
    record: RunRecord,
    console: Console,
    handler_log: Path,
    make_world: Callable[..., World] = World,
    make_scenario: Callable[[_Setup], Scenario] | None = None,
) -> tuple[DemoStats, list[str], World, TaggedStats | None, list[fl.FleetRequest]]:
    """The World driven by the real handlers (in the alarm function's environment, on the simulated clock).
    `make_world` and `make_scenario` (demo/streaming.py) replace the World and the scenario."""
    prov, spec = setup.prov, setup.spec
    notes: list[str] = []
    if prov.skipped_alarms:
        more = ", ..." if len(prov.skipped_alarms) > 3 else ""
        notes.append(
            f"not created (not needed by the handlers): {len(prov.skipped_alarms)} alarms "
            f"({', '.join(prov.skipped_alarms[:3])}{more})"
        )
    others = [c for c in setup.tpl.cluster_ids if c != spec.cluster_id]
    if others:
        notes.append(
            f"the stack manages {len(others) + 1} clusters; the demo simulates the first, the others "
            f"({', '.join(others)}) do not exist in moto (the handlers report them gone, once)"
        )
    env = {"AWS_ENDPOINT_URL": setup.endpoint, **prov.function_env[tp.ALARM_HANDLER]}
    with aws.patched_environ(env):
        functions = _functions(opts, setup.tpl)
        mods = import_handlers(discovery=opts.tagged_cluster, emr_events=tp.EMR_EVENTS_HANDLER in functions)
        common = mods["common"]
        runtimes = {}
        for h in functions:  # one warm container per function
            rt = common.build_runtime({**_environ(), **prov.function_env[h]})
            aws.check_endpoints(setup.endpoint, _runtime_clients(rt))
            runtimes[h] = rt
        world = make_world(
            demand_gib=demand,
            cluster=spec,
            config=setup.tpl.config,
            params=opts.params,
            seed=opts.seed,
            record=record,
            initial_task_nodes=setup.start,
        )
        overlay, fleet, prices = _overlay(opts, setup, notes)
        since = opts.params.epoch.replace(year=opts.params.epoch.year - 1)
        with (
            handler_log.open("w", encoding="utf-8") as hlog,
            aws.spot_prices(prices, since) as priced,
            handler_logs(mods, hlog),
        ):
            if not priced:
                notes.append("moto's EC2 internals changed: the handlers saw moto's fake spot prices")
            scenario = make_scenario(setup) if make_scenario else _scenario(opts, setup, demand)
            controller = DemoController(
                tpl=setup.tpl,
                prov=prov,
                clients=setup.clients,
                cluster_id=spec.cluster_id,
                handlers=mods,
                set_runtime=lambda h: common.set_runtime(runtimes[h]),
                overlay=overlay,
                console=console,
                handler_log=hlog,
                full_emails=opts.full_emails,
                scenario=scenario,
                fleet=fleet,
            )
            for rt in runtimes.values():  # the handlers read `now` from their Runtime: the simulated clock
                rt.clock = controller.now
            try:
                world.run(controller, _progress(console, world, controller))
                controller.publish(float(world.end_s))
                if scenario is not None:
                    scenario.finish()
            finally:
                console.finish()
                overlay.close()
                common.set_runtime(None)
    tagged = scenario.stats if isinstance(scenario, TaggedScenario) else None
    requests = list(fleet.requests) if fleet is not None else []
    return controller.stats, notes, world, tagged, requests


def _overlay(
    opts: DemoOptions, setup: _Setup, notes: list[str]
) -> tuple[aws.EmrOverlay | fl.FleetOverlay, fl.FleetOverlay | None, dict[str, float]]:
    """What the demo lays over moto's EMR (new nodes starting, or a whole TASK fleet), the fleet overlay
    when there is one, and the spot prices the handlers read."""
    spec = setup.spec
    if opts.fleet:
        fleet = fl.FleetOverlay(spec, created=opts.params.epoch)
        if not fleet.available:
            raise tp.DemoError("moto's EMR internals changed: the demo cannot show a fleet cluster")
        fleet.start(setup.start)
        # the clusters managed by tag (--tagged-cluster) are the group demo's cluster
        return fleet, fleet, {**aws.spot_price_table(default_cluster()), **fl.spot_price_table(spec)}
    overlay = aws.EmrOverlay(spec.cluster_id, [g.id for g in spec.task_groups])
    if not overlay.available:
        notes.append("moto's EMR internals changed: the handlers saw new nodes as running at once")
    return overlay, None, aws.spot_price_table(spec)


def _functions(opts: DemoOptions, tpl: tp.StackTemplate) -> tuple[str, ...]:
    """The functions the demo invokes: with a fleet cluster also the EMR-events function, if the stack has
    it (it gets EMR's spot-timeout events)."""
    extra: tuple[str, ...] = (tp.DISCOVERY_HANDLER,) if opts.tagged_cluster else ()
    if opts.fleet and tp.EMR_EVENTS_HANDLER in tpl.functions:
        extra += (tp.EMR_EVENTS_HANDLER,)
    return (tp.ALARM_HANDLER, tp.RECONCILE_HANDLER, *extra)


def _scenario(opts: DemoOptions, setup: _Setup, demand: Sequence[float]) -> TaggedScenario | None:
    """The tagged and untagged clusters, from a third to two thirds of the run (whole minutes)."""
    if not opts.tagged_cluster:
        return None
    end_s = len(demand) * opts.params.step_s
    return TaggedScenario(
        tpl=setup.tpl,
        prov=setup.prov,
        clients=setup.clients,
        spec=default_cluster() if opts.fleet else opts.cluster,  # with --fleet: instance-group clusters
        discovery_env=dict(setup.prov.function_env[tp.DISCOVERY_HANDLER]),
        start_s=float(end_s // 3 // 60 * 60) + 30.0,
        stop_s=float(2 * end_s // 3 // 60 * 60) + 30.0,
    )


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _environ() -> dict[str, str]:
    import os  # noqa: PLC0415

    return dict(os.environ)


def _runtime_clients(rt: Any) -> dict[str, Any]:
    """The handler's DynamoDB client, and clients built the way build_runtime builds the others
    (adapters.aws.make_clients from the environment)."""
    from sparkscale.adapters.aws import make_clients  # noqa: PLC0415

    fresh = make_clients()
    return {
        "dynamodb (handler)": rt.dynamodb,
        "emr": fresh.emr,
        "cloudwatch": fresh.cloudwatch,
        "dynamodb": fresh.dynamodb,
        "sns": fresh.sns,
        "ec2": fresh.ec2,
    }


def _progress(console: Console, world: World, controller: DemoController) -> Callable[[int, int], None]:
    what = "units" if any(g.spec.fleet_id for g in world.task) else "nodes"

    def update(done: int, total: int) -> None:
        nodes = sum(g.running for g in world.task)
        label = (
            f"sim {controller.when(world.now_s)}  TASK {what} {nodes:3d}  "
            f"resizes {controller.stats.modifications}"
        )
        console.progress(done, total, label=label)

    return update


def _fleet_lines(setup: _Setup) -> list[str]:
    """The fleet cluster as RunJobFlow created it and the overlay shows it, in units and GiB."""
    spec = setup.spec
    fixed = ", ".join(
        f"{g.role.value} fleet {g.id} {g.instance_type} x{g.nodes}"
        for g in spec.groups
        if g.role is not Role.TASK
    )
    spot = next(g for g in spec.task_groups if g.market is Market.SPOT)
    od = next(g for g in spec.task_groups if g.market is Market.ON_DEMAND)
    types = ", ".join(
        f"{t.instance_type} ({t.weighted_capacity} unit{'s' if t.weighted_capacity != 1 else ''}, "
        f"{t.memory_gib:g} GiB)"
        for t in spot.fleet_types
    )
    timeout = f"{(spot.spot_timeout_s or 3600) / 60:g} min"
    return [
        f"EMR cluster {spec.cluster_id} (RunJobFlow, instance fleets; ListInstanceFleets/ModifyInstanceFleet "
        f"by the demo's overlay on moto): {fixed}",
        f"TASK fleet {spot.fleet_id}: {types}; a unit counts as {spot.memory_gib:g} GiB (the smallest per "
        f"unit); spot ${spot.usd_per_hour:.4f}/unit-h, on-demand ${od.usd_per_hour:.4f}/unit-h; spot resize "
        f"timeout {timeout}; {setup.start.get(spot.id, 0)} spot + {setup.start.get(od.id, 0)} on-demand "
        "units at start",
    ]


def _setup_lines(tpl: tp.StackTemplate, setup: _Setup) -> list[str]:
    spec, prov = setup.spec, setup.prov

    def count(g: Any) -> int:
        return int(setup.start.get(g.id, 0)) if g.role is Role.TASK else int(g.nodes)

    groups = ", ".join(
        f"{g.role.value} {g.name} {g.instance_type} {g.market.value} x{count(g)}"
        + (f" (${g.usd_per_hour:.4f}/h)" if g.role is Role.TASK else "")
        for g in spec.groups
    )
    kinds = ", ".join(a.spec.kind for a in prov.alarms)
    cluster = (
        _fleet_lines(setup)
        if any(g.fleet_id for g in spec.task_groups)
        else [f"EMR cluster {spec.cluster_id} (RunJobFlow): {groups}"]
    )
    return [
        *cluster,
        f"from the template ({tpl.cluster_ids[0]} -> {spec.cluster_id}): DynamoDB table {prov.table_name}; "
        f"alarm topic and operator topic; {len(prov.alarms)} alarms ({kinds}); "
        f"reconcile every {setup.tpl.reconcile_rate_s} s",
        f"operator emails: SQS queue {aws.OPERATOR_QUEUE} subscribed as the stack subscribes an email "
        f"address (the alarms for people, and the notices its filter policy lets through); every notice: SQS "
        f"queue {aws.NOTICES_QUEUE}",
        "",
    ]


def _compare(
    opts: DemoOptions, demand: list[float], spec: ClusterSpec, config: Config, record: RunRecord
) -> ReplayResult:
    """The replay's baselines on the same trace, cluster and config, with the demo's run added."""
    base = run_replay(
        demand,
        policies=[
            PolicySpec("sparkscale (replay)", pol.SPARKSCALE),
            PolicySpec(pol.EMR_CUSTOM_RULES, pol.EMR_CUSTOM_RULES),
            PolicySpec(pol.ORACLE, pol.ORACLE),
        ],
        config=config,
        cluster=spec,
        params=opts.params,
        seed=opts.seed,
    )
    oracle = base.runs[pol.ORACLE].cost_usd
    runs = {DEMO_RUN: record, **base.runs}
    scores = {DEMO_RUN: _score(demand, record, opts.params, oracle), **base.scores}
    return replace(base, runs=runs, scores=scores, notes=list(base.notes))


def _alone(
    opts: DemoOptions, demand: list[float], spec: ClusterSpec, config: Config, record: RunRecord
) -> ReplayResult:
    f = config.usable_memory_fraction
    oracle = pol.oracle_run(
        demand, core_gib=spec.core_gib(f), offer=spec.cheapest_task_group(f), config=config, p=opts.params
    )
    return ReplayResult(
        step_s=opts.params.step_s,
        core_gib=spec.core_gib(f),
        offers=pol.describe_offers(spec, config),
        demand=list(demand),
        runs={DEMO_RUN: record},
        scores={DEMO_RUN: _score(demand, record, opts.params, oracle.cost_usd)},
    )


def _score(demand: list[float], rec: RunRecord, params: SimParams, oracle_cost: float) -> Any:
    return score(
        demand=demand,
        supply=rec.supply_gib,
        step_s=params.step_s,
        cost_usd=rec.cost_usd,
        oracle_cost_usd=oracle_cost,
        actions=rec.actions,
        scale_out_times_s=rec.scale_out_times_s,
        supply_changes=rec.supply_changes,
        launching=rec.launching_gib,
    )


def _write_files(
    files: Mapping[str, Path],
    replay: ReplayResult,
    stats: DemoStats,
    opts: DemoOptions,
    signals: outputs.FreshSignals,
) -> None:
    files["scores"].write_text(outputs.json_text(replay), encoding="utf-8")
    files["timeline"].write_text(outputs.timeline_text(replay), encoding="utf-8")
    files["decisions"].write_text(
        "".join(json.dumps(d, sort_keys=True) + "\n" for d in stats.decisions), encoding="utf-8"
    )
    files["emails"].write_text(
        "\n".join(
            f"Subject: {e.get('Subject')}\nMessageId: {e.get('MessageId')}\n\n"
            f"{e.get('Message', '')}\n{'=' * 78}\n"
            for e in stats.emails
        ),
        encoding="utf-8",
    )
    outputs.write_plot(
        replay,
        files["plot"],
        title=f"sparkscale demo (real handlers on moto): {Path(opts.trace.name).name}",
        signals=signals,
    )


# --- the signal panel -------------------------------------------------------------------------------------
def fresh_signals(world: World, decisions: Sequence[Mapping[str, Any]]) -> outputs.FreshSignals:
    """Pending YARN memory as the policy could read it after the run: the YARN collector's minutes (readable
    when the minute has closed and the PutMetricData lag has passed) and EMR's 5-minute datapoints (readable
    after EMR's publication lag; EMR has no pending-memory metric: ContainerPending × the container size, as
    the policy estimates it, MemoryAllocatedMB / ContainerAllocated or default_container_memory_mb), and
    the policy's demand forecasts from the decisions that carry one."""
    p = world.p
    yarn_delay = p.yarn_period_s + p.yarn_lag_s
    world.yarn.made()
    yarn = [
        (t + yarn_delay, v[names.YARN_PENDING_MEMORY_MB] / 1024.0)
        for t, v in zip(world.yarn.times, world.yarn.values, strict=True)
        if names.YARN_PENDING_MEMORY_MB in v
    ]
    default_mb = world.config.default_container_memory_mb
    emr = []
    for t, v in zip(world.emr.times, world.emr.values, strict=True):
        pending = v.get(names.EMR_CONTAINER_PENDING)
        if pending is None:
            continue
        alloc_mb, alloc_n = v.get(names.EMR_MEMORY_ALLOCATED_MB), v.get(names.EMR_CONTAINER_ALLOCATED)
        size_mb = alloc_mb / alloc_n if alloc_mb and alloc_n and alloc_n >= 1 else default_mb
        emr.append((t + p.emr_lag_s, pending * size_mb / 1024.0))
    return outputs.FreshSignals(
        yarn=yarn,
        emr=emr,
        truth_run=DEMO_RUN,
        forecast=forecast_points(decisions, p.epoch),
        yarn_label=f"YARN collector: YarnPendingMemoryMB (1-min, readable {yarn_delay:g} s after the "
        "minute starts)",
        emr_label=f"EMR's metrics: ContainerPending × container size ({p.emr_period_s} s, readable "
        f"{p.emr_lag_s:g} s after)",
    )


def forecast_points(decisions: Sequence[Mapping[str, Any]], epoch: datetime) -> list[tuple[float, float]]:
    """(time s, GiB) of each decision's demand forecast, at the time it is for. The forecast is the first
    field whose name contains "forecast" (at the top of the record, or one level down): a number (GiB; MB
    when its name ends in `_mb`), or a mapping (records.forecast_to_dict: `value_gib`, `target_at`,
    `lead_time_s`) whose value is its `value*` number, else its first number naming demand, GiB or MB. Its
    time: the mapping's `target_at`, else the decision's `at` plus a lead time (a key containing "lead",
    seconds). Decisions without one, or with a value not understood, are skipped."""
    out: list[tuple[float, float]] = []
    for d in decisions:
        found = _forecast_field(d)
        at = _parse_at(d.get("at"))
        if found is None or at is None:
            continue
        key, value = found
        gib, lead = _forecast_value(key, value)
        target = _parse_at(value.get("target_at")) if isinstance(value, Mapping) else None
        if lead is None:
            lead = _lead_s(d)
        if gib is None or not math.isfinite(gib):
            continue
        when = target if target is not None else at + timedelta(seconds=lead or 0.0)
        out.append(((when - epoch).total_seconds(), gib))
    return out


def _forecast_field(d: Mapping[str, Any]) -> tuple[str, Any] | None:
    for k, v in d.items():
        low = k.lower()
        if "forecast" in low and "lead" not in low and (_number(v) is not None or isinstance(v, Mapping)):
            return k, v
    for v in d.values():
        if isinstance(v, Mapping):
            found = _forecast_field({k: x for k, x in v.items() if not isinstance(x, Mapping)})
            if found is not None:
                return found
    return None


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _forecast_value(key: str, value: Any) -> tuple[float | None, float | None]:
    """(GiB, lead s or None) of one forecast field."""
    n = _number(value)
    if n is not None:
        return (n / 1024.0 if key.lower().endswith("_mb") else n), None
    if not isinstance(value, Mapping):
        return None, None
    lead = _lead_s(value)
    numbers = [(k.lower(), x) for k, v in value.items() if (x := _number(v)) is not None]
    numbers = [(k, x) for k, x in numbers if "lead" not in k]
    for wanted in ("value", "demand", "gib", "_mb"):
        for k, x in numbers:
            if wanted in k and (k.endswith(("gib", "_mb")) or wanted in ("gib", "_mb")):
                return (x / 1024.0 if k.endswith("_mb") else x), lead
    return None, lead


def _lead_s(d: Mapping[str, Any]) -> float | None:
    for k, v in d.items():
        low = k.lower()
        if "lead" in low and _number(v) is not None:
            return float(v) * (60.0 if low.endswith("_min") else 1.0)
    return None


def _parse_at(at: Any) -> datetime | None:
    if not isinstance(at, str):
        return None
    try:
        t = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


# --- the summary ------------------------------------------------------------------------------------------
def summary_text(result: DemoResult, *, trace_name: str) -> str:
    """What each policy cost and left unserved, in words (replay.outputs.plain_words), what happened in the
    demo, the comparison table (replay.outputs.summary_text) and where the files are."""
    s = result.stats
    hours = len(result.replay.demand) * result.replay.step_s / 3600.0
    speed = hours * 3600.0 / result.wall_s if result.wall_s > 0 else 0.0

    def by_kind(envelopes: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for e in envelopes:
            kind = ((e.get("MessageAttributes") or {}).get("kind") or {}).get("Value", "alarm")
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    def counts(d: Mapping[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "none"

    invocations = ", ".join(f"{h.split('.')[1]} {n}" for h, n in s.invocations.items())
    fixed = (
        "MASTER/CORE unchanged"
        if not s.fixed_groups_changed
        else f"MASTER/CORE CHANGED: {s.fixed_groups_changed}"
    )
    cluster = (
        fleet_summary_lines(result, fixed)
        if result.unit_gib is not None
        else [
            f"EMR cluster {result.cluster_id} (moto): {s.modifications} requested-count changes read back "
            f"from ListInstanceGroups, TASK nodes requested {sum(result.initial_task_nodes.values())} at "
            f"start, {result.max_requested} at most; {fixed}"
        ]
    )
    lines = [
        "",
        f"== sparkscale demo: {hours:.1f} h of {trace_name} in {result.wall_s:.0f} s "
        f"({speed:,.0f}x real time) ==",
        *cluster,
        f"handler invocations: {invocations}; outcomes: {counts(s.outcomes)}",
        f"alarm state changes: {counts(s.transitions)}",
        f"notices on the operator topic (chat, other subscribers): {len(s.notices)} "
        f"({counts(by_kind(s.notices))})",
        f"emails an operator's address received (the stack's filter policy, on SQS): {len(s.emails)} "
        f"({counts(by_kind(s.emails))})",
    ]
    lines[2:2] = [
        *outputs.plain_words(result.replay),
        *against_emr_rules(result.replay),
        "",
    ]  # under the heading
    if result.tagged is not None:
        lines += tagged_lines(result.tagged)
        lines += [f"FAILED: {f}" for f in result.tagged_failures]
    lines += [f"failed invocation: {f}" for f in s.failures[:5]]
    lines += [f"note: {n}" for n in result.notes]
    lines += ["", outputs.summary_text(result.replay, words=False).rstrip("\n"), "", "files:"]
    lines += [f"  {k:<12}{p}" for k, p in result.files.items()]
    return "\n".join(lines) + "\n"


def against_emr_rules(replay: ReplayResult) -> list[str]:
    """The demo's run against EMR's default rules in one sentence: its cost as a multiple of theirs and the
    share of the time each was short of memory, and whether it met "no more cost at no more time short"
    (the demo's goal), by how much it missed. Nothing when either run is missing (--no-compare)."""
    ours, theirs = replay.scores.get(DEMO_RUN), replay.scores.get(pol.EMR_CUSTOM_RULES)
    if ours is None or theirs is None:
        return []
    cost, short = ours.cost_usd <= theirs.cost_usd + 0.005, ours.tau_u_pct <= theirs.tau_u_pct + 1e-9
    verdict = (
        "no more cost at no more time short: met"
        if cost and short
        else "; ".join(
            text
            for miss, text in (
                (not cost, f"${ours.cost_usd - theirs.cost_usd:,.2f} more than EMR's rules"),
                (not short, f"short {ours.tau_u_pct - theirs.tau_u_pct:.1f} points of the time more often"),
            )
            if miss
        )
        + " (not met; docs/demo.md says why)"
    )
    ratio = f"{ours.cost_usd / theirs.cost_usd:.2f} ×" if theirs.cost_usd > 0 else "∞ ×"
    text = (
        f"Against EMR's rules: {DEMO_RUN} cost {ratio} theirs (${ours.cost_usd:,.2f} against "
        f"${theirs.cost_usd:,.2f}) and was short of memory {ours.tau_u_pct:.1f} % of the time against their "
        f"{theirs.tau_u_pct:.1f} %: {verdict}."
    )
    return textwrap.wrap(text, width=outputs.WRAP, subsequent_indent="    ", break_on_hyphens=False)


def fleet_summary_lines(result: DemoResult, fixed: str) -> list[str]:
    """The fleet cluster's part of the summary, in capacity units and GiB (as the fleet notices say it):
    ModifyInstanceFleet calls and the units they asked for per market, the on-demand fallback, EMR's spot
    timeouts and what the EMR-events handler did with them."""
    s, unit = result.stats, result.unit_gib or 0.0
    reqs = result.fleet_requests
    task = [r for r in reqs if r.role == Role.TASK.value]
    start = sum(result.initial_task_nodes.values())
    peak = result.max_requested
    most_od = max((r.on_demand or 0 for r in task), default=0)
    most_spot = max((r.spot or 0 for r in task), default=0)
    with_id = sum(1 for r in reqs if r.cluster_id == result.cluster_id)
    others = len(reqs) - len(task)
    handled: dict[str, int] = {}
    for _, _, res in s.spot_timeouts:
        handled[res] = handled.get(res, 0) + 1
    answers = ", ".join(f"{k} {v}" for k, v in sorted(handled.items())) or "none"
    given_up = sum(u for _, u, _ in s.spot_timeouts)
    return [
        f"EMR cluster {result.cluster_id} (moto, instance fleets): {len(reqs)} ModifyInstanceFleet calls "
        f"({len(task)} on the TASK fleet, {others} on any other; {with_id} with the cluster id), read back "
        f"from ListInstanceFleets; {fixed}",
        f"TASK units requested {start} at start ({start * unit:,.0f} GiB), {peak} at most "
        f"({peak * unit:,.0f} GiB of instance memory at {unit:g} GiB a unit); spot target at most "
        f"{_units(most_spot)}, on-demand target at most {_units(most_od)} (the fallback)",
        f"spot timeouts (EMR Instance Fleet Resize, Spot Provisioning timeout): {len(s.spot_timeouts)}, "
        f"{_units(given_up, 'spot unit')} given up on ({given_up * unit:,.0f} GiB); the EMR-events handler "
        f"answered: {answers}",
    ]


def _units(n: int, what: str = "unit") -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"
