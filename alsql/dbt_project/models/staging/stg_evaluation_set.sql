select
    project_id,
    item_id,
    class_id as true_class_id,
    annotation_id
from {{ source('alsql', 'evaluation_set') }}
