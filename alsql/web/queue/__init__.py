"""The labeling queue: the next items for a user from the project's open rounds.

Train and evaluation rounds are both served, interleaved: the items of one claim,
and successive claims, alternate between the two purposes while both have work (an
annotator cannot tell which is which, so the evaluation set is labeled like the
rest, and a team that labels only in the browser gets accuracy figures). Within a
purpose: rounds by ``round_id``, items by ``rank`` (the clustered key).

A claim may name a preferred round (``round_id``; the map's "label these" opens the
label page on the round it made): its pending items come first, by rank, and only
when it has no more to give does the claim fall back to the order above. A preferred
round must be one of the project's rounds (``UnknownRound`` otherwise); a closed one
simply gives nothing.

A claimed item is leased to the user (``round_items.assigned_to`` /
``lease_expires_at``) for ``lease_seconds`` (``LEASE_SECONDS``, 2 minutes); nobody
else is offered it until the lease expires, so two annotators never get the same
item at once. The labeling page renews its leases while it is open (``renew``, a
heartbeat) and releases them when it closes (``release``); logout releases every
lease of the user. The claim is atomic: on PostgreSQL the
candidate rows are read ``FOR UPDATE SKIP LOCKED``; on SQLite the whole claim runs
inside ``write_transaction`` (``BEGIN IMMEDIATE``), which serializes claims.

A label is never refused because of a lease: if two users label one item (a lease
expired, or the map opened it), both rows are kept (annotations are append-only).
Labels are written only through ``alsql.annotate.insert_annotations`` with source
``ui``; the item's pending ``round_items`` rows in the project's open rounds turn
``labeled``. Skip turns them ``skipped`` and writes no annotation.

Speed: a per-process low-water mark per round (the lowest rank still pending; ranks
below it are labeled or skipped, and those states are final) makes the claim an
index range scan that starts where the work is; the mark is refreshed every
``LOW_REFRESH`` claims of a round, or when a claim comes up short. Each round closes
when its last pending item is labeled or skipped. A label is checked (item, class)
in one statement and marks its round items with one ``UPDATE ... RETURNING``; the
open rounds are read once per request (``Claims.open_rounds``).

Quality (docs/quality.md; the project's ``overlap``, ``overlap_annotators`` and
``gold_rate``, kept per process for ``SETTINGS_TTL`` seconds):

- Overlap: when the first serving of a round item is labeled and the item is among the
  ``overlap`` share (``alsql.quality.is_overlapped``, a stable hash of ``item_id``), its
  ``round_items.copies_open`` is set to ``overlap_annotators - 1``. A claim serves such
  items first (oldest round, lowest rank) to users who have not labeled them and were
  never served them: each further serving is an ``item_assignments`` row (kind
  ``overlap``, keyed by project, item and annotator, so never twice to one person) and
  takes one from ``copies_open`` (a conditional UPDATE of the round item; on PostgreSQL
  the candidate rows are locked ``FOR UPDATE SKIP LOCKED``). Skipping or giving back such
  a serving, or its lease expiring unlabeled, gives the copy back (``copies_open + 1``)
  and the row stays (status ``skipped``), so that person is not served it again. Expired
  copies are looked for at most every ``SWEEP_SECONDS`` per project (sooner once a copy
  this process served may have expired). A copy opened by another server process is
  served by this one from its next copy-book load (within ``COPY_BOOK_TTL`` seconds).
- Gold: each slot of a claim is a gold item with probability ``gold_rate`` (none when no
  other item is served): an item with a ``gold`` annotation that the user has not
  labeled and was never served (an ``item_assignments`` row of kind ``gold``). Gold items
  are never in the unlabeled pool (they carry an annotation) nor marked: the claim
  answer shows them like any item (the round of the claim, no gold label in the
  history), and the answer is an ordinary ``ui`` label.
- Items served through ``item_assignments`` are shown blind (``Claim.blind``): their
  history lists only the user's own labels, so a second annotator does not see the first.

Cost: the quality path adds no round trip to the plain one in the common case. Which
slots are gold is drawn in Python from the cached settings, and the gold tables are
touched only when a slot drew gold: one ``INSERT ... SELECT ... RETURNING`` finds and
serves gold items, from a random point of the project's gold ids. Copies are looked up
only when this process's copy book (``_CopyBook``: the project's open copies and who saw
each, reloaded every ``COPY_BOOK_TTL`` seconds) says one may be the user's to take;
otherwise the claim runs the plain path's statements. When they are looked up, the
user's open servings and the copy candidates come in ONE statement, the one the plain
claim spends on open servings (on PostgreSQL it also takes the copies and writes their
servings: data-modifying CTEs), and a copy served replaces the lease of a fresh item. The
label that opens an item's copies sets them in its own ``UPDATE``; the label of a copy or
gold item closes its serving alone (no round item to mark). Expired copies are swept at
most every ``SWEEP_SECONDS``.

Concurrency: on SQLite, writers of this process queue on a lock before ``BEGIN
IMMEDIATE`` (a wait that ends as soon as the writer before is done, instead of
SQLite's busy handler, which sleeps in steps of up to 100 ms). A request's writes
and the reads of its answer (``then``) share one transaction on one connection.

Modules, one concern each: ``common`` (limits, ``Claim``, ``Claims``, ``UnknownRound``),
``statements`` (the SQL every dialect runs), ``postgres`` and ``sqlite`` (each dialect's own
statements), ``claims`` (round items: open rounds, low-water mark, leases of free items),
``settings`` (the quality settings cache), ``overlap`` (copies and the copy book), ``gold``
(gold items), ``leases`` (renew, release), ``labels`` (label, skip) and ``label_queue``
(``LabelQueue``, which mixes them together and composes a claim).
"""

from __future__ import annotations

from alsql.web.queue.common import (COPY_BOOK_MAX, COPY_BOOK_TTL, LEASE_SECONDS, LEFT_TTL, LOW_REFRESH, MAX_CLAIM,
                                    SETTINGS_TTL, SWEEP_SECONDS, Claim, Claims, Then, UnknownRound)
from alsql.web.queue.label_queue import LabelQueue

__all__ = ["Claim", "Claims", "LabelQueue", "Then", "UnknownRound", "COPY_BOOK_MAX", "COPY_BOOK_TTL", "LEASE_SECONDS",
           "LEFT_TTL", "LOW_REFRESH", "MAX_CLAIM", "SETTINGS_TTL", "SWEEP_SECONDS"]
