select
    round_id,
    item_id,
    score,
    status as round_item_status,
    {{ utc_timestamp('labeled_at') }} as labeled_at
from {{ source('alsql', 'round_items') }}
