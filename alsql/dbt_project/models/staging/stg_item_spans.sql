-- One row per item with a capture time: the seconds since 1970 UTC at which it starts
-- (captured_at: for a segment, its file's start time plus the segment's start) and ends
-- (plus end_s - start_s for a segment, else its duration, else 0: an image is an
-- instant). Fractions of a second are kept, so windows of seconds are exact.
select
    item_id,
    entity,
    {{ epoch_seconds('captured_at') }} as start_s,
    {{ epoch_seconds('captured_at') }} + coalesce(end_s - start_s, duration, 0) as end_s
from {{ source('alsql', 'items') }}
where captured_at is not null
