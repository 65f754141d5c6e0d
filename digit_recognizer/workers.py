"""Members per GPU: with several GPUs, one worker process per GPU trains its share of the members.

Each worker sees one GPU alone (CUDA_VISIBLE_DEVICES), so it trains in float16 with nothing mirrored; it sends
back its members' predictions, which the ensemble averages as if one process had trained them all. Data
parallelism (one member's batch split across GPUs) does not pay for models this small: the step is bound by
per-step overhead, which two GPUs double. The workers start with `spawn`, so each imports its backend afresh;
this module imports none, so the parent can count GPUs without taking their memory.
"""

import functools
import multiprocessing
import multiprocessing.connection
import os
import pickle

from digit_recognizer import quiet


def gpus_for(config, groups: int) -> list:
    """The devices to deal the groups to: GPU numbers (as strings) with several GPUs, one per worker; [None] for
    one process. `config.workers` (0 = one per GPU) caps them; on a CPU several workers are plain processes."""
    from digit_recognizer import devices

    found = devices.visible_gpus()
    count = min(config.workers or len(found) or 1, groups, len(found) or groups)
    if count < 2:
        return [None]
    return found[:count] if found else [None] * count


def deal(groups: list, workers: int) -> list:
    """Groups dealt round-robin, so each worker starts with the first members and a budget cuts the last."""
    return [groups[worker::workers] for worker in range(workers)]


def _work(connection, name, job: bytes):
    """A worker's body: runs `job` (a pickled call of ensemble.train_share on its groups) and sends back the
    Share, or the error that stopped it. Unpickling the job imports the ensemble, and with it the backend."""
    try:
        with quiet.start_up_hidden():  # as quiet as the parent
            work = pickle.loads(job)
        connection.send(work(log=lambda line: print(f"[{name}] {line}", flush=True)))
    except Exception as error:  # noqa: BLE001: whatever stopped it, the parent must hear of it
        connection.send(f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def train_shares(gpus: list, groups: list, work) -> tuple:
    """Starts one worker per entry of `gpus`, each calling `work(its dealt groups, log=...)`, and waits on all of
    them together: (the Shares that came back, in worker order; a line for each worker that failed). A worker
    that fails costs its own members only; that none came back is a ValueError."""
    context = multiprocessing.get_context("spawn")
    started = []
    for number, (gpu, mine) in enumerate(zip(gpus, deal(groups, len(gpus)))):
        name = f"worker {number + 1}" if gpu is None else f"gpu {gpu}"
        receiving, sending = context.Pipe(duplex=False)
        job = pickle.dumps(functools.partial(work, mine))
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # the child copies the environment as it starts
        try:
            process = context.Process(target=_work, args=(sending, name, job), daemon=True)
            process.start()
        finally:
            if saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved
        sending.close()
        started.append((name, process, receiving))
    return collect(started)


def collect(started: list) -> tuple:
    """Each started worker's answer, taken as it comes: (Shares in worker order, failures)."""
    shares, failed = {}, {}  # by worker name, as each answers
    waiting = {receiving: (name, process) for name, process, receiving in started}
    while waiting:
        for receiving in multiprocessing.connection.wait(list(waiting)):
            name, process = waiting.pop(receiving)
            try:
                answer = receiving.recv()
            except EOFError:
                answer = None
            process.join()
            if hasattr(answer, "members"):
                shares[name] = answer
            else:
                failed[name] = failure(answer, process)
                print(f"[{name}] {failed[name]}; the other workers go on", flush=True)
    order = [name for name, _, _ in started]
    shares = [shares[name] for name in order if name in shares]
    failures = [f"{name} {failed[name]}" for name in order if name in failed]
    if not shares:
        raise ValueError(f"workers: {'; '.join(failures)}; --workers 1 trains in one process, with the whole error")
    return shares, failures


def failure(answer, process) -> str:
    """Why a worker sent no Share, in words."""
    return f"failed: {answer}" if answer else f"stopped (exit code {process.exitcode}) before sending members"
