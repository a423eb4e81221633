select
    model_id,
    project_id,
    name as model_name,
    architecture,
    label_count,
    status as model_status,
    {{ utc_timestamp('created_at') }} as created_at
from {{ source('alsql', 'model_versions') }}
