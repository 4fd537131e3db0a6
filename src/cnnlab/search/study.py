"""The study: its storage, sampler and pruner, and the loop one worker runs.

Storage is an SQLite file in the study folder unless a URL is given; every worker that opens the
same PostgreSQL URL and study name joins one study (Optuna's RDB storage). Each running trial
writes a heartbeat; a trial whose worker died (SIGKILL, power loss) goes stale after
`grace` seconds and is marked FAIL and re-queued (Optuna's retry callback), and the
retry resumes the dead trial's run folder when it is on the same machine. With the default
SQLite file a worker that finds no other worker alive on this study folder (a file lock tells)
marks the RUNNING trials it finds as FAIL and re-queues them at once, without waiting for the
heartbeat to go stale.

`--trials N` is the study's target, not this worker's share: N trials that trained (completed
or pruned after some epochs; rejected ones do not count). A worker stops when the study has N,
so re-running a killed command finishes the study instead of adding N more, and workers on many
machines stop together.
"""
from __future__ import annotations

import fcntl
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

try:   # optuna >= 4.9 renamed the callback and its storage argument
    from optuna.storages import RetryHeartbeatStaleTrialCallback as _Retry
    _RETRY_ARG = "heartbeat_stale_trial_callback"
except ImportError:  # pragma: no cover (older optuna)
    from optuna.storages import RetryFailedTrialCallback as _Retry
    _RETRY_ARG = "failed_trial_callback"

from cnnlab.search.objective import TrialSettings, run_trial
from cnnlab.search.space import Space

RETRIES = 3                 # a trial killed more often than this is left FAIL (something kills it every time)
REJECTED_IN_A_ROW = 200     # this many limit-breaking samples in a row: the space hardly fits the limits
DEFAULT_HEARTBEAT_S = 60    # seconds between a running trial's heartbeats
WAIT_POLL_S = 5.0           # how often a worker with nothing to start looks again (seconds)


def default_storage(study_dir: Path) -> str:
    return f"sqlite:///{(Path(study_dir) / 'study.db').resolve()}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def make_storage(url: str, heartbeat_s: int = DEFAULT_HEARTBEAT_S) -> RDBStorage:
    """RDB storage with heartbeats; stale trials are re-queued. Several workers creating the tables of
    a fresh database at once may collide: the loser tries again."""
    engine = {"connect_args": {"timeout": 60}} if is_sqlite(url) else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():   # heartbeats are "experimental" in optuna's words since 2.x
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                                  grace_period=2 * heartbeat_s, **{_RETRY_ARG: _retry()})
        except ImportError as err:
            raise ValueError(f"--storage {url.split('://')[0]}://...: its database driver is not installed ({err}); "
                             f"for PostgreSQL: pip install 'psycopg[binary]' and use postgresql+psycopg://...") from None
        except Exception as err:  # noqa: BLE001 (sqlalchemy errors: a concurrent CREATE TABLE, a server starting)
            if attempt == 4:
                raise ValueError(f"cannot open the study storage {_safe(url)}: {err}; check the URL, the server "
                                 f"and the credentials") from None
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _retry():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _Retry(max_retry=RETRIES)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':')[0]}:***@{host}"


def make_sampler(options: dict) -> optuna.samplers.BaseSampler:
    kwargs = {k: v for k, v in options.items() if k != "name"}
    try:
        if options["name"] == "random":
            return optuna.samplers.RandomSampler(**kwargs)
        return optuna.samplers.TPESampler(**kwargs)
    except TypeError as err:
        raise ValueError(f"sampler {options}: {err}; see optuna's {options['name']} sampler for its options") from None


def make_pruner(options: dict) -> optuna.pruners.BasePruner:
    kwargs = {k: v for k, v in options.items() if k != "name"}
    try:
        if options["name"] == "none":
            return optuna.pruners.NopPruner()
        if options["name"] == "hyperband":
            return optuna.pruners.HyperbandPruner(**kwargs)
        return optuna.pruners.MedianPruner(**kwargs)
    except TypeError as err:
        raise ValueError(f"pruner {options}: {err}; see optuna's {options['name']} pruner for its options") from None


def open_study(space: Space, study_name: str, storage: RDBStorage) -> optuna.Study:
    """Create or join the study; a study begun with another space is refused (its trials would not compare)."""
    study = optuna.create_study(storage=storage, study_name=study_name, direction=space.direction,
                                sampler=make_sampler(space.sampler), pruner=make_pruner(space.pruner),
                                load_if_exists=True)
    fingerprint = study.user_attrs.get("space_fingerprint")
    if fingerprint is None:
        study.set_user_attr("space_fingerprint", space.fingerprint())
        study.set_user_attr("space_file", str(space.path))
    elif fingerprint != space.fingerprint():
        raise ValueError(f"study {study_name!r} was started with another space ({study.user_attrs.get('space_file')}); "
                         f"give this one another --study NAME")
    if study.direction.name.lower() != space.direction:
        raise ValueError(f"study {study_name!r} {study.direction.name.lower()}s, this space's objective "
                         f"{space.metric} wants {space.direction}; give it another --study NAME")
    return study


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Mark a dead trial FAIL and queue a retry with its parameters (and its run folder)."""
    if trial.state == TrialState.RUNNING:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    _retry()(study, trial)


class LocalWorkers:
    """A lock file in the study folder: held shared by every worker on this machine. A worker that
    can take it exclusively is alone, so RUNNING trials in an SQLite study are dead: re-queue them."""

    def __init__(self, study_dir: Path):
        self.path = Path(study_dir) / ".workers.lock"
        self._file = None

    def __enter__(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        fcntl.flock(self._file.fileno(), fcntl.LOCK_SH)
        return alone

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()


def requeue_dead_trials(study: optuna.Study, log: Callable[[str], None]) -> int:
    dead = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in dead:
        log(f"trial {trial.number} was running when its worker stopped: marked FAIL and queued again")
        requeue(study, trial)
    return len(dead)


def counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    trained = [t for t in trials if t.state == TrialState.COMPLETE
               or (t.state == TrialState.PRUNED and "rejected" not in t.user_attrs)]
    return {"trained": len(trained), "running": sum(t.state == TrialState.RUNNING for t in trials),
            "waiting": sum(t.state == TrialState.WAITING for t in trials),
            "rejected": sum("rejected" in t.user_attrs for t in trials)}


@dataclass
class WorkerOutcome:
    trials_run: list[int] = field(default_factory=list)   # numbers of the trials this worker ran
    stopped_by: str = "target"                             # target | timeout


def run_worker(study: optuna.Study, settings: TrialSettings, target: int, timeout_s: Optional[float] = None,
               log: Callable[[str], None] = print) -> WorkerOutcome:
    """Run trials until the study has `target` trained ones (or `timeout_s` passed: no new trial
    starts after it; the one running finishes)."""
    outcome = WorkerOutcome()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    rejected_in_a_row = 0
    current: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        current[:] = [trial.number]
        return run_trial(trial, settings)

    while True:
        if deadline is not None and time.monotonic() >= deadline:
            outcome.stopped_by = "timeout"
            return outcome
        now = counts(study)
        if now["trained"] >= target:
            return outcome
        if now["trained"] + now["running"] >= target and now["waiting"] == 0:
            # The last trials are running elsewhere. Wait: if their worker died they go stale and
            # come back as WAITING, and this worker finishes them.
            time.sleep(min(WAIT_POLL_S, max(1.0, study._storage.get_heartbeat_interval() or WAIT_POLL_S)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            continue
        current.clear()
        try:
            study.optimize(objective, n_trials=1, gc_after_trial=True)
        except KeyboardInterrupt:
            if current:   # its run saved a checkpoint: the retry resumes it
                requeue(study, study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(
                    study._study_id, current[0])))
            raise
        if not current:
            continue
        outcome.trials_run.append(current[0])
        trial = study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, current[0]))
        rejected_in_a_row = rejected_in_a_row + 1 if "rejected" in trial.user_attrs else 0
        if rejected_in_a_row >= REJECTED_IN_A_ROW:
            raise ValueError(f"{REJECTED_IN_A_ROW} trials in a row broke the limits (last: "
                             f"{trial.user_attrs['rejected']}); loosen --max-params or narrow the space")


__all__ = ["default_storage", "make_storage", "open_study", "run_worker", "counts", "requeue", "requeue_dead_trials",
           "LocalWorkers", "WorkerOutcome", "is_sqlite", "DEFAULT_HEARTBEAT_S"]
