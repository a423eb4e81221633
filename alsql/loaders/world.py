"""Who is reading: the (rank, world size, worker, worker count) of one consumer.

A consumer is one DataLoader worker of one ``torchrun`` rank. Ranks come from
``torch.distributed`` when it is initialized (else rank 0 of 1); workers come from
``torch.utils.data.get_worker_info()`` (else worker 0 of 1, the main process).
Explicit ``rank`` / ``world_size`` override what torch says (tests simulate ranks so).
"""

from __future__ import annotations

from dataclasses import dataclass

from alsql.errors import AlsqlError

__all__ = ["World"]


@dataclass(frozen=True)
class World:
    """One consumer's place among all consumers of a dataset."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise AlsqlError(f"rank {self.rank} of world_size {self.world_size}: expected 0 <= rank < world_size")
        if self.num_workers < 1 or not 0 <= self.worker < self.num_workers:
            raise AlsqlError(f"worker {self.worker} of {self.num_workers}: expected 0 <= worker < num_workers")

    @property
    def consumer(self) -> int:
        """This consumer's index in ``range(consumers)``: rank-major, then worker."""
        return self.rank * self.num_workers + self.worker

    @property
    def consumers(self) -> int:
        """How many consumers read the dataset at once (ranks x workers)."""
        return self.world_size * self.num_workers

    @classmethod
    def detect(cls, rank: int | None = None, world_size: int | None = None) -> World:
        """The world of the calling process (and DataLoader worker, if any)."""
        if (rank is None) != (world_size is None):
            raise AlsqlError("rank and world_size override each other only together: pass both or neither")
        if rank is None:
            rank, world_size = 0, 1
            try:
                import torch.distributed as dist

                if dist.is_available() and dist.is_initialized():
                    rank, world_size = dist.get_rank(), dist.get_world_size()
            except ImportError:  # pragma: no cover - torch is a dependency
                pass
        worker, num_workers = 0, 1
        try:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
            if info is not None:
                worker, num_workers = info.id, info.num_workers
        except ImportError:  # pragma: no cover
            pass
        return cls(rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)
