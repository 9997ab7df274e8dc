"""The discovery use case: every EMR cluster that carries the opt-in tag is managed from its first minute to
its termination, without redeploying (docs/clusters-by-tag.md).

- `handle_state_change`: an "EMR Cluster State Change". To STARTING, BOOTSTRAPPING, RUNNING or WAITING:
  DescribeCluster (EMR's events carry no tags); a tagged cluster is registered in the state table, its alarms
  are created from the same `alarm_specs` the stack uses (thresholds of its profile), and operators hear once.
  To TERMINATED / TERMINATED_WITH_ERRORS: DescribeCluster confirms it (an event alone never turns scaling
  off), its alarms are deleted and it is marked released, with an expiry.
- `sweep`, on the reconcile schedule: the same for every cluster ListClusters reports active (missed events),
  every registered cluster EMR no longer reports (a missed termination), and every alarm named
  `<alarm_prefix>-j-…` whose cluster is not managed (orphans).

The managed set is then the static `clusters` setting plus the registry (`managed_clusters`); a registered
cluster is evaluated with its profile's settings, in dry run while it carries sparkscale:paused=true, with
the Kinesis streams of its tag sparkscale:kinesis-streams=a,b (`cluster_config`; an invalid stream name
refuses the cluster, like an unknown profile). A cluster in the static list is never adopted: its alarms are
the stack's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from sparkscale import names, notices
from sparkscale.alarms import alarm_specs
from sparkscale.config import Config, ConfigError, stream_name_problem
from sparkscale.ports import ClusterInfo, DiscoveryPorts, Ports, Registration
from sparkscale.usecases.shell import KEY_CLUSTER_GONE, Shell

log = logging.getLogger(__name__)

MIN_TIME_LEFT_S: Final = 15.0  # a sweep adopts no further cluster with less time left than this
RELEASED_KEEP_S: Final = 7 * 24 * 3600  # a released cluster's registry item expires a week later
KEY_MANAGING: Final = "discovery_managing"
KEY_RELEASED: Final = "discovery_released"
KEY_REFUSED: Final = "discovery_refused"
ACTIVE_STATES: Final = frozenset(names.EMR_ACTIVE_STATES)
ENDED_STATES: Final = frozenset((*names.EMR_ENDED_STATES, "TERMINATING"))
_ALARM_CLUSTER: Final = re.compile(r"^(j-[A-Za-z0-9]+)-")


class Action(StrEnum):
    ADOPTED = "adopted"  # registered, alarms created, operators told
    UPDATED = "updated"  # profile or pause tag changed, or alarms were missing: alarms put again
    UNCHANGED = "unchanged"  # already managed as tagged
    RELEASED = "released"  # terminated (confirmed) or untagged: alarms deleted, registry item released
    KEPT = "kept"  # a TERMINATED event, but EMR still reports the cluster active: still managed
    REFUSED = "refused"  # tagged, but cannot be managed (unknown profile, invalid Kinesis stream name)
    IGNORED = "ignored"  # not tagged, in the static list, or nothing to do


@dataclass(frozen=True)
class ClusterChange:
    cluster_id: str
    action: Action
    reason: str
    profile: str = ""
    paused: bool = False
    alarms_created: tuple[str, ...] = ()
    alarms_deleted: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepResult:
    managed: tuple[Registration, ...]  # the clusters managed by tag after the sweep
    changes: tuple[ClusterChange, ...]
    orphans_deleted: tuple[str, ...]
    dry_run: bool = False
    incomplete: bool = False  # stopped before the Lambda's timeout: the next sweep goes on

    @property
    def alarms_created(self) -> tuple[str, ...]:
        return tuple(n for c in self.changes for n in c.alarms_created)

    @property
    def alarms_deleted(self) -> tuple[str, ...]:
        return tuple(n for c in self.changes for n in c.alarms_deleted) + self.orphans_deleted


@dataclass
class Discovery:
    """One discovery run: the ports, the settings, `now`, and whether it only says what it would do."""

    ports: Ports
    discovery: DiscoveryPorts
    config: Config
    now: datetime
    include_heap: bool = True  # the heap agent's alarms too (the stack's heap_alarms feature)
    dry_run: bool = False  # change nothing (no alarm, no registry item, no notice)
    time_left_s: Callable[[], float] | None = None  # the Lambda's remaining time; None: no limit
    regs: dict[str, Registration] = field(default_factory=dict)  # the registry as this run sees it

    def out_of_time(self) -> bool:
        """Stop before the Lambda's timeout: at 3 alarm writes a second, a sweep that finds 100 new clusters
        needs about five minutes; the next sweep goes on where this one stopped."""
        return self.time_left_s is not None and self.time_left_s() < MIN_TIME_LEFT_S

    def shell(self, cluster_id: str) -> Shell:
        return Shell(ports=self.ports, config=self.config, now=self.now, cluster_id=cluster_id)


# --- pure rules -------------------------------------------------------------------------------------------
def tagged(info: ClusterInfo, config: Config) -> bool:
    key = config.discovery_tag_key
    return bool(key) and info.tags.get(key) == config.discovery_tag_value


def profile_of(info: ClusterInfo) -> tuple[str, bool]:
    """(profile name, paused) from the cluster's tags."""
    profile = info.tags.get(names.TAG_PROFILE, "").strip()
    return profile, info.tags.get(names.TAG_PAUSED, "").strip().lower() == "true"


def streams_of(info: ClusterInfo) -> tuple[tuple[str, ...], str | None]:
    """(the Kinesis streams of the tag sparkscale:kinesis-streams=a,b, why it is invalid or None). No tag,
    or an empty one: no stream (the settings' `streams` apply)."""
    raw = info.tags.get(names.TAG_KINESIS_STREAMS, "")
    streams = tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
    for stream in streams:
        why = stream_name_problem(stream)
        if why:
            return (), f"tag {names.TAG_KINESIS_STREAMS}: {why}"
    return streams, None


def with_streams(config: Config, streams: tuple[str, ...]) -> Config:
    """The settings with the cluster's own Kinesis streams (its tag), when it names some."""
    return replace(config, streams=list(streams)) if streams else config


def cluster_config(config: Config, registration: Registration | None) -> Config:
    """The settings one cluster is evaluated with: its profile's, its tag's Kinesis streams, and dry run
    while paused. A profile that is no longer defined falls back to the base settings (logged)."""
    if registration is None:
        return config
    try:
        cfg = config.for_profile(registration.profile)
    except ConfigError as exc:
        log.warning("%s: %s; using the base settings", registration.cluster_id, exc.why)
        cfg = config
    cfg = with_streams(cfg, registration.streams)
    return replace(cfg, dry_run=True) if registration.paused and not cfg.dry_run else cfg


def managed_clusters(config: Config, registrations: Mapping[str, Registration]) -> list[str]:
    """The static list, then every cluster managed by tag (each once)."""
    out = list(config.clusters)
    seen = set(out)
    out += sorted(c for c, r in registrations.items() if r.active and c not in seen)
    return out


def alarm_cluster(alarm_name: str, prefix: str) -> str | None:
    """The cluster id in `<prefix>-j-…-<kind>`, or None for another alarm."""
    if not alarm_name.startswith(prefix + "-"):
        return None
    m = _ALARM_CLUSTER.match(alarm_name[len(prefix) + 1 :])
    return m.group(1) if m else None


# --- the event path -----------------------------------------------------------------------------------------
def handle_state_change(run: Discovery, cluster_id: str, state: str) -> ClusterChange:
    """One "EMR Cluster State Change" (see the module docstring)."""
    if cluster_id in run.config.clusters:
        return ClusterChange(cluster_id, Action.IGNORED, "in the static clusters list: the stack manages it")
    run.regs = dict(run.discovery.registry.registrations(run.now))
    info = run.discovery.directory.describe(cluster_id)
    if state in ACTIVE_STATES:
        if info is None or info.state not in ACTIVE_STATES:
            now_state = "unknown to EMR" if info is None else info.state
            return ClusterChange(cluster_id, Action.IGNORED, f"event said {state}, EMR says {now_state}")
        existing = set(run.discovery.alarms.alarm_names(f"{run.config.alarm_prefix}-{cluster_id}-"))
        return _adopt(run, info, existing)
    return _confirm_end(run, cluster_id, info, f"EMR reported {state}")


def _confirm_end(run: Discovery, cluster_id: str, info: ClusterInfo | None, said: str) -> ClusterChange:
    """Release the cluster if EMR confirms it ended; keep managing it otherwise."""
    if info is not None and info.state not in ENDED_STATES:
        reason = f"{said}, but EMR still reports {info.state}: still managed"
        log.warning(reason, extra={"cluster_id": cluster_id})
        return ClusterChange(cluster_id, Action.KEPT, reason)
    reg = run.regs.get(cluster_id)
    if reg is None or not reg.active:
        return ClusterChange(cluster_id, Action.IGNORED, f"{said}: not managed by tag")
    why = f"cluster {'unknown to EMR' if info is None else info.state}"
    return _release(run, reg, why, ended=True)


# --- adopt and release --------------------------------------------------------------------------------------
def _adopt(run: Discovery, info: ClusterInfo, existing: set[str]) -> ClusterChange:
    """Register a tagged active cluster and put its alarms (again when its profile or pause tag changed, or
    an alarm is missing); release one whose tag was removed."""
    cid, reg = info.cluster_id, run.regs.get(info.cluster_id)
    if not tagged(info, run.config):
        if reg is not None and reg.active:
            return _release(run, reg, "the opt-in tag was removed", ended=False)
        return ClusterChange(cid, Action.IGNORED, "not tagged")
    profile, paused = profile_of(info)
    try:
        cfg = run.config.for_profile(profile, source=f"tag {names.TAG_PROFILE}")
    except ConfigError as exc:
        kept = f" (still managed with {reg.profile or 'the base settings'})" if reg and reg.active else ""
        return _refuse(run, cid, exc.why + kept)
    streams, bad = streams_of(info)
    if bad is not None:
        kept = " (still managed as it was)" if reg and reg.active else ""
        return _refuse(run, cid, bad + kept)
    cfg = with_streams(cfg, streams)
    specs = alarm_specs(cfg, cid, include_heap=run.include_heap)
    wanted = tuple(s.name for s in specs)
    fresh = reg is None or not reg.active
    same = (
        not fresh and reg is not None and (reg.profile, reg.paused, reg.streams) == (profile, paused, streams)
    )
    if same and set(wanted) <= existing:
        return ClusterChange(cid, Action.UNCHANGED, "managed", profile, paused)
    since = run.now if fresh or reg is None else reg.since
    new = Registration(cid, info.name, profile, paused, since, alarms=wanted, streams=streams)
    stale = tuple(n for n in (reg.alarms if reg is not None else ()) if n not in wanted)
    if not run.dry_run:
        run.discovery.alarms.put_alarms(specs)
        if stale:
            run.discovery.alarms.delete_alarms(stale)
        run.discovery.registry.register(new)
    run.regs[cid] = new
    action = Action.ADOPTED if fresh else Action.UPDATED
    if fresh and not run.dry_run:
        shell = run.shell(cid)
        if shell.claim(KEY_MANAGING, None):
            notice = notices.managing_notice(
                cid, name=info.name, profile=profile, paused=paused, alarms=wanted, now=run.now
            )
            shell.send(notice)
    log.info("cluster %s %s", cid, action.value, extra={"cluster_id": cid, "profile": profile})
    return ClusterChange(cid, action, "tagged", profile, paused, alarms_created=wanted, alarms_deleted=stale)


def _release(run: Discovery, reg: Registration, why: str, *, ended: bool) -> ClusterChange:
    """Delete the cluster's alarms and mark its registry item released (it expires RELEASED_KEEP_S later);
    a terminated cluster is also marked gone for the scaler."""
    cid = reg.cluster_id
    deleted = reg.alarms
    if not run.dry_run:
        if deleted:
            run.discovery.alarms.delete_alarms(deleted)
        done = replace(reg, released_at=run.now, why=why)
        run.discovery.registry.register(done, expires_at=run.now + timedelta(seconds=RELEASED_KEEP_S))
        shell = run.shell(cid)
        if ended:
            shell.claim(KEY_CLUSTER_GONE, None)  # the scaler stops; this notice replaces "cluster gone"
        if shell.claim(KEY_RELEASED, None):
            shell.send(notices.released_notice(cid, why=why, alarms=deleted, now=run.now))
    run.regs[cid] = replace(reg, released_at=run.now, why=why)
    log.info("cluster %s released: %s", cid, why, extra={"cluster_id": cid})
    return ClusterChange(cid, Action.RELEASED, why, reg.profile, reg.paused, alarms_deleted=deleted)


def _refuse(run: Discovery, cluster_id: str, why: str) -> ClusterChange:
    if not run.dry_run:
        shell = run.shell(cluster_id)
        if shell.claim(f"{KEY_REFUSED}:{why}", None):
            shell.send(notices.refused_notice(cluster_id, why=why, now=run.now))
    log.warning("tagged cluster %s not managed: %s", cluster_id, why, extra={"cluster_id": cluster_id})
    return ClusterChange(cluster_id, Action.REFUSED, why)


# --- the sweep ----------------------------------------------------------------------------------------------
def sweep(run: Discovery) -> SweepResult:
    """Every active cluster (ListClusters, all pages), every registered one EMR no longer lists, and the
    orphaned alarms (see the module docstring)."""
    d, prefix = run.discovery, run.config.alarm_prefix
    run.regs = dict(d.registry.registrations(run.now))
    static = set(run.config.clusters)
    by_cluster = _alarms_by_cluster(d.alarms.alarm_names(f"{prefix}-j-"), prefix)
    changes: list[ClusterChange] = []
    listed = [c for c in d.directory.active_clusters() if c not in static]
    for cid in listed:
        if run.out_of_time():
            break
        info = d.directory.describe(cid)
        if info is None or info.state not in ACTIVE_STATES:
            continue  # ended between the listing and now: the loop below or the next sweep releases it
        change = _adopt(run, info, by_cluster.get(cid, set()))
        if change.action is not Action.IGNORED and change.action is not Action.UNCHANGED:
            changes.append(change)
    seen = set(listed)
    for reg in [r for r in run.regs.values() if r.active and r.cluster_id not in seen]:
        if run.out_of_time():
            break
        info = d.directory.describe(reg.cluster_id)
        if info is not None and info.state in ACTIVE_STATES:
            continue  # started after the listing: the next sweep describes it
        changes.append(_confirm_end(run, reg.cluster_id, info, "not listed as active"))
    incomplete = run.out_of_time()
    managed = static | {c for c, r in run.regs.items() if r.active}
    done = {n for c in changes for n in c.alarms_deleted}
    orphans = [] if incomplete else [n for c, ns in by_cluster.items() if c not in managed for n in ns]
    orphans = sorted(n for n in orphans if n not in done)
    if orphans and not run.dry_run:
        d.alarms.delete_alarms(orphans)
    active = tuple(sorted((r for r in run.regs.values() if r.active), key=lambda r: r.cluster_id))
    return SweepResult(active, tuple(changes), tuple(orphans), run.dry_run, incomplete)


def _alarms_by_cluster(alarm_names: Iterable[str], prefix: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name in alarm_names:
        cid = alarm_cluster(name, prefix)
        if cid is not None:
            out.setdefault(cid, set()).add(name)
    return out


def summary(result: SweepResult) -> dict[str, object]:
    """The JSON-safe view the handler returns and the CLI prints."""
    return {
        "dry_run": result.dry_run,
        "incomplete": result.incomplete,
        "managed": [
            {"cluster_id": r.cluster_id, "name": r.name, "profile": r.profile, "paused": r.paused}
            for r in result.managed
        ],
        "changes": [change_dict(c) for c in result.changes],
        "alarms_created": list(result.alarms_created),
        "alarms_deleted": list(result.alarms_deleted),
        "orphans_deleted": list(result.orphans_deleted),
    }


def change_dict(change: ClusterChange) -> dict[str, object]:
    return {
        "cluster_id": change.cluster_id,
        "action": change.action.value,
        "reason": change.reason,
        "profile": change.profile,
        "paused": change.paused,
        "alarms_created": list(change.alarms_created),
        "alarms_deleted": list(change.alarms_deleted),
    }


__all__ = [
    "Action",
    "ClusterChange",
    "Discovery",
    "SweepResult",
    "cluster_config",
    "handle_state_change",
    "managed_clusters",
    "sweep",
]
