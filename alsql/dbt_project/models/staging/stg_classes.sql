select
    project_id,
    class_id,
    name as class_name,
    display_order
from {{ source('alsql', 'classes') }}
