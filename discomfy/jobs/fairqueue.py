"""Our own queue of waiting jobs, fair between users.

The fairness rule (start-time fair queueing, a cousin of deficit round robin):

1. Every user with waiting jobs has a *meter*: the work they have been served so far, where a job costs its
   kind's weight (by default an image 1, an upscale 2, a video 4).
2. The next job is the oldest waiting job of the user with the lowest meter; ties go to the user who was served
   (or arrived) longest ago. So with equal weights users take turns one job at a time, and after a video
   (weight 4) its owner waits while the others get about four images' worth.
3. A user who starts waiting starts at the current round (the meter reading of the last job served), so
   nobody banks credit by being idle, and nobody who was alone is punished when others arrive. A user who
   comes back right after a heavy job keeps their higher meter: they still owe that wait.
4. ``pop_next(can_run)`` walks the fair order and takes the first job ``can_run`` accepts (a job whose server
   is busy is skipped). Skipped jobs keep their place, and their owner's meter does not move, so they go
   first as soon as they can run; the owner's later jobs do not overtake them in the fair order either.
5. ``position_of`` is the place (1 = next) in the same fair order ``pop_next`` follows when every job can run.

Everything here is in memory: after a restart the scheduler pushes the store's waiting jobs again, oldest
first, and meters start from zero.

Never: read the clock, do I/O, or lose or duplicate a job (each pushed job leaves exactly once, by
``pop_next`` or ``remove``).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from discomfy.jobs.state import JobId, JobKind, UserId

DEFAULT_WEIGHTS: Mapping[JobKind, int] = {JobKind.IMAGE: 1, JobKind.UPSCALE: 2, JobKind.VIDEO: 4}


class Queueable(Protocol):
    """What the queue needs of a job (``Job`` is one)."""

    @property
    def id(self) -> JobId: ...

    @property
    def owner_id(self) -> UserId: ...

    @property
    def kind(self) -> JobKind: ...


class FairQueue[T: Queueable]:
    def __init__(self, weights: Mapping[JobKind, int] | None = None) -> None:
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        for kind, weight in self.weights.items():
            if not isinstance(weight, int) or weight < 1:
                raise ValueError(f"the weight of {kind} jobs must be a whole number ≥ 1, not {weight!r}")
        #: Each waiting user's jobs, oldest first.
        self._lanes: dict[UserId, deque[T]] = {}
        #: Work served so far (see rule 1); kept for a user who just left, for rule 3.
        self._meter: dict[UserId, int] = {}
        #: When each user was last served or arrived (a counter): the tie-break of rule 2.
        self._turn: dict[UserId, int] = {}
        self._counter = 0
        #: The current round: the meter reading of the last job served.
        self._round = 0
        self._ids: dict[JobId, T] = {}
        self._order: list[T] | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __iter__(self) -> Iterator[T]:
        """The waiting jobs in fair order (the order ``pop_next`` takes them when all can run)."""
        return iter(self.order())

    def cost(self, job: T) -> int:
        return self.weights[job.kind]

    def push(self, job: T) -> None:
        if job.id in self._ids:
            raise ValueError(f"job {job.id} is already queued")
        user = job.owner_id
        if user not in self._lanes:
            self._lanes[user] = deque()
            self._meter[user] = max(self._meter.get(user, self._round), self._round)
            self._turn[user] = self._tick()
        self._lanes[user].append(job)
        self._ids[job.id] = job
        self._order = None

    def remove(self, job_id: JobId) -> T | None:
        """Take a job out (cancelled); None if it was not waiting here. Other jobs keep their order."""
        job = self._ids.pop(job_id, None)
        if job is None:
            return None
        lane = self._lanes[job.owner_id]
        lane.remove(job)
        if not lane:
            del self._lanes[job.owner_id]
        self._forget_if_empty()
        self._order = None
        return job

    def pop_next(self, can_run: Callable[[T], bool] = lambda job: True) -> T | None:
        """The first job in fair order that ``can_run`` accepts, taken out of the queue; None if none can run."""
        for job in self.order():
            if can_run(job):
                break
        else:
            return None
        user = job.owner_id
        self._round = max(self._round, self._meter[user])
        self._meter[user] += self.cost(job)
        self._turn[user] = self._tick()
        del self._ids[job.id]
        lane = self._lanes[user]
        lane.remove(job)
        if not lane:
            del self._lanes[user]
        self._forget_if_empty()
        self._order = None
        return job

    def position_of(self, job_id: JobId) -> int | None:
        """1 for the next job, 2 for the one after, …; None if the job is not waiting here."""
        if job_id not in self._ids:
            return None
        for place, job in enumerate(self.order(), start=1):
            if job.id == job_id:
                return place
        raise AssertionError("unreachable: every queued job is in the fair order")

    def jobs_of(self, user_id: UserId) -> list[T]:
        return list(self._lanes.get(user_id, ()))

    def order(self) -> list[T]:
        """Simulate the pops that would follow if every job could run (rule 2), without changing anything."""
        if self._order is None:
            heap = [(self._meter[u], self._turn[u], u) for u in self._lanes]
            heapq.heapify(heap)
            lanes = {u: iter(lane) for u, lane in self._lanes.items()}
            left = {u: len(lane) for u, lane in self._lanes.items()}
            order: list[T] = []
            tick = self._counter
            while heap:
                meter, _, user = heapq.heappop(heap)
                job = next(lanes[user])
                order.append(job)
                left[user] -= 1
                if left[user]:
                    tick += 1
                    heapq.heappush(heap, (meter + self.cost(job), tick, user))
            self._order = order
        return list(self._order)

    def _tick(self) -> int:
        self._counter += 1
        return self._counter

    def _forget_if_empty(self) -> None:
        # Meters only matter relative to other waiting users: with nobody waiting, history is irrelevant.
        # Users who left with a meter at or below the current round gain nothing from it (rule 3): drop them.
        if not self._lanes:
            self._meter.clear()
            self._turn.clear()
            self._round = 0
            return
        for user in [u for u, m in self._meter.items() if u not in self._lanes and m <= self._round]:
            del self._meter[user]
            self._turn.pop(user, None)
