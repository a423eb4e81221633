select
    project_id,
    name as project_name,
    description as project_description,
    {{ utc_timestamp('created_at') }} as created_at
from {{ source('alsql', 'projects') }}
