select
    round_id,
    project_id,
    model_id,
    strategy,
    purpose,
    budget,
    status as round_status,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('closed_at') }} as closed_at
from {{ source('alsql', 'rounds') }}
